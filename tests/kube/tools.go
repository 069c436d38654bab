//go:build tools

// Package kubetestbed pins the Kubernetes parts that the Rust tests run, built
// by scripts/testbed: the control plane (kube-apiserver and etcd) and the local
// node of scripts/cluster (kubelet, kube-scheduler, kube-controller-manager and
// kubectl). Nothing imports it.
package kubetestbed

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
