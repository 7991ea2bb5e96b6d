#!/usr/bin/env bash
# Build (or reuse) what the end-to-end tests (tests/e2e) run besides the control plane: each line calls one
# component's cached build script. Quick when everything is cached; the test fixtures call the same scripts
# and fail loudly if a component is missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash hack/image/build.sh >/dev/null  # our image from the Dockerfile (tests/e2e/test_image_container.py)
bash hack/vcsim/build.sh >/dev/null  # our vCenter simulator (govmomi), for tests/e2e/test_vsphere.py
bash hack/capv/build.sh >/dev/null   # Cluster API Provider vSphere's manager and CRDs, same tests
bash hack/upstream/build.sh >/dev/null            # upstream's provider v1.1.0 and its CRDs (migration)
bash hack/clusterctl/build.sh >/dev/null          # clusterctl from Cluster API v1.14.2 (clusterctl move)
bash hack/clusterctl/core-repository.sh >/dev/null  # Cluster API's providers as a local repository (init)
bash hack/clusterctl/node-repository.sh >/dev/null  # the same, full, with their managers' images (node)
bash hack/cert-manager/fetch-crds.sh >/dev/null   # cert-manager's CRDs (clusterctl init finds cert-manager)
bash hack/node/build.sh >/dev/null                # the real node: containerd, runc, CNI, iptables, sandbox image
bash hack/cert-manager/build.sh >/dev/null        # cert-manager.yaml rendered from its chart (real node)
bash hack/cert-manager/binaries/build.sh >/dev/null  # cert-manager's controller, webhook, cainjector images (own mains)
