module incluster-ipam/hack/node/pause

go 1.26.0
