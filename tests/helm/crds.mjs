// Checks the chart's cert-manager and prometheus-operator documents against those projects'
// published CRD schemas, as compiled into the npm packages @kubernetes-models/cert-manager
// and @kubernetes-models/prometheus-operator (installed by scripts/testbed under
// .testbed/node). Reads a JSON array of documents on stdin; prints one line per document
// ("ok KIND NAME" or the schema's complaint) and exits 65 when any is invalid.
//
//   node tests/helm/crds.mjs .testbed/node < docs.json
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const packages = {
  "cert-manager.io/v1": "cert-manager/cert-manager.io/v1",
  "monitoring.coreos.com/v1": "prometheus-operator/monitoring.coreos.com/v1",
};
const root = resolve(process.argv[2], "node_modules/@kubernetes-models");
const docs = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const doc of docs) {
  const dir = packages[doc.apiVersion];
  if (!dir) {
    console.log(`no published schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  const module = await import(pathToFileURL(join(root, dir, `${doc.kind}.js`)).href);
  try {
    new module[doc.kind](doc).validate();
    console.log(`ok ${doc.kind} ${doc.metadata.name}`);
  } catch (e) {
    console.log(`invalid ${doc.kind} ${doc.metadata.name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 65 : 0);
