//go:build tools

// Package kubetestbed pins the Kubernetes control plane that the Rust tests run
// (kube-apiserver and etcd, built by scripts/testbed). Nothing imports it.
package kubetestbed

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
