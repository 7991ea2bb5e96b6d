// A small vCenter simulator main of ours (main.go) over govmomi's simulator package, for the vSphere e2e
// tests; hack/vcsim/build.sh builds it into a cache outside the repo.
module incluster-ipam/hack/vcsim

go 1.26.0

require github.com/vmware/govmomi v0.53.0

require github.com/google/uuid v1.6.0 // indirect
