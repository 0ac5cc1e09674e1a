// The upstream side of the CSI driver comparison: kubernetes-csi's
// csi-driver-host-path, built from the Go module proxy at a pinned
// version by bench/peers/build.sh. The proxy this project can reach
// refuses this module (403 "This module version is not available", for
// the version list and for every version tried), so go.sum cannot be
// resolved here and the build fails; see bench/README.md.
module berth.local/bench-hostpath

go 1.26

require github.com/kubernetes-csi/csi-driver-host-path v1.17.0

tool github.com/kubernetes-csi/csi-driver-host-path/cmd/hostpathplugin
