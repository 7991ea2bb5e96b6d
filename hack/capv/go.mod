// Cluster API Provider vSphere (CAPV), built from its own Go module for the e2e tests (tests/e2e/vsphere).
// `go install` cannot build it: its go.mod replaces Cluster API and requires a placeholder version, and a
// dependency's replace directives are ignored. This wrapper repeats the replace; the `tool` line anchors the
// requirement so `go mod tidy` keeps it. hack/capv/build.sh builds the manager into a cache outside the repo.
module incluster-ipam/hack/capv

go 1.26.0

tool sigs.k8s.io/cluster-api-provider-vsphere

require sigs.k8s.io/cluster-api-provider-vsphere v1.16.1

replace sigs.k8s.io/cluster-api => sigs.k8s.io/cluster-api v1.13.1
