package main

import (
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A manifest in the shape berth_bench writes: two classes (one
// WaitForFirstConsumer), two nodes, volumes and claims as given.
func manifest(t *testing.T, items string) *cluster {
	t.Helper()
	doc := `{"apiVersion":"v1","kind":"List","items":[
{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"fast","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},"provisioner":"ebs.csi.aws.com","volumeBindingMode":"Immediate"},
{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"local"},"provisioner":"kubernetes.io/no-provisioner","volumeBindingMode":"WaitForFirstConsumer"},
{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-1","labels":{"kubernetes.io/hostname":"node-1"}}},
{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-2","labels":{"kubernetes.io/hostname":"node-2"}}},
` + items + `]}`
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pv(name, class, size, modes, extra string) string {
	return `{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"` + name + `"},"spec":{"capacity":{"storage":"` + size +
		`"},"accessModes":` + modes + `,"storageClassName":"` + class + `"` + extra + `},"status":{"phase":"Available"}},` + "\n"
}

func pvc(name, class, size, modes, extra string) string {
	cls := ""
	if class != "" {
		cls = `,"storageClassName":"` + class + `"`
	}
	return `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"` + name + `","namespace":"ns"},"spec":{"accessModes":` + modes +
		`,"resources":{"requests":{"storage":"` + size + `"}}` + cls + extra + `}},` + "\n"
}

func affinity(node string) string {
	return `,"local":{"path":"/mnt"},"nodeAffinity":{"required":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/hostname","operator":"In","values":["` + node + `"]}]}]}}`
}

func replayOf(t *testing.T, c *cluster) map[string]string {
	t.Helper()
	r := newReplay(c, copies(c.volumes), true)
	if err := r.run(); err != nil {
		t.Fatal(err)
	}
	return r.bindings
}

func trimComma(s string) string { return s[:len(s)-2] }

func TestCapacityTieGoesToTheSmallestName(t *testing.T) {
	c := manifest(t, pv("pv-b", "fast", "1Gi", `["ReadWriteOnce"]`, "")+
		pv("pv-a", "fast", "1Gi", `["ReadWriteOnce"]`, "")+
		trimComma(pvc("claim", "", "1G", `["ReadWriteOnce"]`, "")))
	r := newReplay(c, copies(c.volumes), true)
	if err := r.run(); err != nil {
		t.Fatal(err)
	}
	if got := r.bindings["ns/claim"]; got != "pv-a" {
		t.Fatalf("claim bound to %q, want pv-a (default class, name order)", got)
	}
	if r.ties != 1 {
		t.Fatalf("ties = %d, want 1", r.ties)
	}
}

func TestFewestAccessModesFirstThenSmallest(t *testing.T) {
	c := manifest(t, pv("pv-small", "fast", "1Gi", `["ReadWriteOnce","ReadOnlyMany"]`, "")+
		pv("pv-big", "fast", "5Gi", `["ReadWriteOnce"]`, "")+
		trimComma(pvc("claim", "fast", "1Gi", `["ReadWriteOnce"]`, "")))
	if got := replayOf(t, c)["ns/claim"]; got != "pv-big" {
		t.Fatalf("claim bound to %q, want pv-big (RWO set before RWO+ROX)", got)
	}
}

func TestNamedClaimsGoFirst(t *testing.T) {
	c := manifest(t, pv("pv-x", "fast", "1Gi", `["ReadWriteOnce"]`, "")+
		pvc("a", "fast", "1Gi", `["ReadWriteOnce"]`, "")+
		trimComma(pvc("b", "fast", "1Gi", `["ReadWriteOnce"]`, `,"volumeName":"pv-x"`)))
	got := replayOf(t, c)
	if got["ns/b"] != "pv-x" || got["ns/a"] != "" {
		t.Fatalf("bindings %v, want only b -> pv-x", got)
	}
}

func TestSchedulerPathHonoursNodeAffinity(t *testing.T) {
	c := manifest(t, pv("pv-1", "local", "5Gi", `["ReadWriteOnce"]`, affinity("node-1"))+
		pv("pv-2", "local", "1Gi", `["ReadWriteOnce"]`, affinity("node-2"))+
		pvc("data", "local", "1Gi", `["ReadWriteOnce"]`, "")+
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","namespace":"ns"},"spec":{"nodeName":"node-1","containers":[{"name":"c","image":"i"}],"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"data"}}]}}`)
	if got := replayOf(t, c)["ns/data"]; got != "pv-1" {
		t.Fatalf("data bound to %q, want pv-1 (the only volume on node-1)", got)
	}
}

func TestClaimsGoByNamespaceThenName(t *testing.T) {
	a := &metav1.ObjectMeta{Namespace: "a", Name: "x"}
	ab := &metav1.ObjectMeta{Namespace: "a-b", Name: "x"}
	if !before(a, ab) || before(ab, a) {
		t.Fatal(`want namespace "a" before "a-b"`)
	}
}
