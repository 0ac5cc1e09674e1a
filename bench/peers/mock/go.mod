// The upstream side of the CSI driver comparison: the mock CSI driver of
// kubernetes-csi's csi-test (cmd/mock-driver), built by
// bench/peers/build.sh. v4.2.0 is the last csi-test release that has it
// (v4.3.0 removed it in favour of csi-driver-host-path, which the Go module
// proxy this project can reach refuses with 403). It keeps its volumes in
// memory and does no I/O; see bench/README.md.
module berth.local/bench-peer-mock

go 1.26

require (
	github.com/container-storage-interface/spec v1.3.0 // indirect
	github.com/go-logr/logr v0.3.0 // indirect
	github.com/golang/mock v1.4.4 // indirect
	github.com/golang/protobuf v1.4.3 // indirect
	github.com/kubernetes-csi/csi-test/v4 v4.2.0 // indirect
	github.com/robertkrimen/otto v0.0.0-20200922221731-ef014fd054ac // indirect
	github.com/sirupsen/logrus v1.7.0 // indirect
	golang.org/x/net v0.0.0-20201209123823-ac852fbbde11 // indirect
	golang.org/x/sys v0.0.0-20201207223542-d4d67f95c62d // indirect
	golang.org/x/text v0.3.4 // indirect
	google.golang.org/genproto v0.0.0-20201209185603-f92720507ed4 // indirect
	google.golang.org/grpc v1.34.0 // indirect
	google.golang.org/protobuf v1.25.0 // indirect
	gopkg.in/sourcemap.v1 v1.0.5 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
	k8s.io/klog/v2 v2.4.0 // indirect
)

tool github.com/kubernetes-csi/csi-test/v4/cmd/mock-driver
