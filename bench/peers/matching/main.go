// Command matching is the upstream side of berth's matching comparison: it
// replays, over a cluster manifest (the `kind: List` JSON document that
// `berth dry-run -f` reads), the volume matching kube-controller-manager's
// PV controller and kube-scheduler's VolumeBinding plugin do, with the real
// k8s.io/component-helpers/storage/volume FindMatchingVolume, and times it.
//
// What is replayed, and what upstream leaves unspecified (fixed here the way
// berth documents it, so that the two sides can be compared claim by claim):
//
//   - Admission: a claim without storageClassName gets the default class
//     (the DefaultStorageClass admission plugin). Not timed.
//   - PV controller, syncUnboundClaim, claim by claim. Upstream takes claims
//     in work-queue order; here claims naming a volume (spec.volumeName)
//     come first, then all others, each group by namespace/name (berth's
//     order). A named claim binds if its volume is unclaimed and passes the
//     controller's checkVolumeSatisfyClaim (reimplemented: it is unexported),
//     or if the volume's claimRef already points at it. Any other claim goes
//     through findBestMatchForClaim: the access-mode sets present in the
//     index that contain every requested mode, fewest modes first, and in
//     each FindMatchingVolume(claim, volumesOfThatSet, nil, nil,
//     delayBinding, true). Upstream orders sets with the same number of modes
//     by map iteration and lists a set's volumes in map order; here sets go by
//     (size, RWO=1|ROX=2|RWX=4|RWOP=8 bits) and volumes by name, so a capacity
//     tie goes to the smallest name, as in berth.
//   - Scheduler (WaitForFirstConsumer claims whose pod has a nodeName):
//     pod by pod in namespace/name order, each pod's claims by request
//     (byPVCSize), FindMatchingVolume(claim, volumesOfTheClass, node,
//     chosen, true, true).
//   - Before matching, syncVolume's "claim bound elsewhere" branch is applied
//     to volumes whose claimRef (with uid) names a claim bound to another
//     volume, in its converged state (syncVolumes).
//   - A binding sets the volume's claimRef in place, as the API update the
//     informer then delivers would, so no volume is taken twice.
//
// Timed: building the access-mode index and the per-class lists, and the
// matching itself; not timed: reading and decoding the JSON, admission,
// the deep copy that gives every round fresh volumes.
//
// Protocol (so that rounds can alternate with berth's without re-reading
// the manifest): after loading it prints one JSON line {"ready":…}; then for
// each line read from stdin, "run" replays once and prints
// {"ns":…,"scheduler_ns":…,"bound":…} (scheduler_ns: the part spent in the
// scheduler path), "ties" replays once untimed, counting the decisions
// where upstream's own unspecified orders could have chosen differently,
// and prints {"ties":…}. At end of input it writes the last run's bindings
// to -bindings (claim "namespace/name" → volume name) if given.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/storage/volume"
)

const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// modeBits are berth's bits for an access mode; sets are ordered by them.
var modeBits = map[v1.PersistentVolumeAccessMode]uint8{
	v1.ReadWriteOnce:    1,
	v1.ReadOnlyMany:     2,
	v1.ReadWriteMany:    4,
	v1.ReadWriteOncePod: 8,
}

type cluster struct {
	volumes []*v1.PersistentVolume // by name
	named   []*v1.PersistentVolumeClaim
	others  []*v1.PersistentVolumeClaim
	delayed map[string]bool // class name → WaitForFirstConsumer
	nodes   map[string]*v1.Node
	pods    []*v1.Pod // with a nodeName, by namespace/name
	claims  map[string]*v1.PersistentVolumeClaim
}

func key(namespace, name string) string { return namespace + "/" + name }

// before orders objects by (namespace, name), as berth does; comparing the
// joined "namespace/name" would not ("a-b/x" sorts before "a/x").
func before(a, b *metav1.ObjectMeta) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

func load(path string) (*cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &cluster{
		delayed: map[string]bool{},
		nodes:   map[string]*v1.Node{},
		claims:  map[string]*v1.PersistentVolumeClaim{},
	}
	var claims []*v1.PersistentVolumeClaim
	defaultClass := ""
	for i, raw := range list.Items {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("%s: item %d: %w", path, i, err)
		}
		var obj any
		switch meta.Kind {
		case "PersistentVolume":
			obj = &v1.PersistentVolume{}
		case "PersistentVolumeClaim":
			obj = &v1.PersistentVolumeClaim{}
		case "StorageClass":
			obj = &storagev1.StorageClass{}
		case "Node":
			obj = &v1.Node{}
		case "Pod":
			obj = &v1.Pod{}
		default:
			continue
		}
		if err := json.Unmarshal(raw, obj); err != nil {
			return nil, fmt.Errorf("%s: item %d (%s): %w", path, i, meta.Kind, err)
		}
		switch o := obj.(type) {
		case *v1.PersistentVolume:
			c.volumes = append(c.volumes, o)
		case *v1.PersistentVolumeClaim:
			claims = append(claims, o)
		case *storagev1.StorageClass:
			c.delayed[o.Name] = o.VolumeBindingMode != nil &&
				*o.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
			if o.Annotations[defaultClassAnnotation] == "true" {
				defaultClass = o.Name
			}
		case *v1.Node:
			c.nodes[o.Name] = o
		case *v1.Pod:
			if o.Spec.NodeName != "" {
				c.pods = append(c.pods, o)
			}
		}
	}
	sort.Slice(c.volumes, func(i, j int) bool { return c.volumes[i].Name < c.volumes[j].Name })
	sort.Slice(c.pods, func(i, j int) bool {
		return before(&c.pods[i].ObjectMeta, &c.pods[j].ObjectMeta)
	})
	sort.Slice(claims, func(i, j int) bool {
		return before(&claims[i].ObjectMeta, &claims[j].ObjectMeta)
	})
	for _, claim := range claims {
		// The DefaultStorageClass admission plugin, at creation.
		if claim.Spec.StorageClassName == nil && defaultClass != "" {
			class := defaultClass
			claim.Spec.StorageClassName = &class
		}
		c.claims[key(claim.Namespace, claim.Name)] = claim
		if claim.Spec.VolumeName != "" {
			c.named = append(c.named, claim)
		} else {
			c.others = append(c.others, claim)
		}
	}
	return c, nil
}

// modeSet is a set of access modes as berth's bits plus upstream's index key.
type modeSet struct {
	bits  uint8
	modes []v1.PersistentVolumeAccessMode
}

func setOf(modes []v1.PersistentVolumeAccessMode) modeSet {
	var s modeSet
	for _, m := range modes {
		s.bits |= modeBits[m]
	}
	for _, m := range []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce, v1.ReadOnlyMany, v1.ReadWriteMany, v1.ReadWriteOncePod} {
		if s.bits&modeBits[m] != 0 {
			s.modes = append(s.modes, m)
		}
	}
	return s
}

func (s modeSet) size() int {
	return len(s.modes)
}

// replay is one pass over fresh copies of the volumes.
type replay struct {
	c        *cluster
	sets     []modeSet
	byModes  map[uint8][]*v1.PersistentVolume
	byClass  map[string][]*v1.PersistentVolume
	byName   map[string]*v1.PersistentVolume
	bindings map[string]string
	// Counting ties costs extra FindMatchingVolume calls, so only when asked.
	countTies bool
	ties      int
	// Time spent in the scheduler path, to tell the two paths apart.
	scheduling time.Duration
}

// Annotations syncVolume reads.
const (
	annDynamicallyProvisioned = "pv.kubernetes.io/provisioned-by"
	annBoundByController      = "pv.kubernetes.io/bound-by-controller"
)

// syncVolumes applies, in place, the PV controller's syncVolume to volumes
// whose claimRef (with uid) names a live claim that is bound to another
// volume, in the state its later syncs converge to: a dynamically
// provisioned volume with policy Delete is released (and deleted, so it
// never binds); one the controller bound loses its claimRef; one a user
// bound loses only the claimRef's uid (unbindVolume); both are then
// Available.
func syncVolumes(c *cluster, volumes []*v1.PersistentVolume) {
	for _, pv := range volumes {
		ref := pv.Spec.ClaimRef
		if ref == nil || ref.UID == "" {
			continue
		}
		claim := c.claims[key(ref.Namespace, ref.Name)]
		if claim == nil || claim.UID != ref.UID || claim.Spec.VolumeName == "" ||
			claim.Spec.VolumeName == pv.Name {
			continue
		}
		if metav1.HasAnnotation(pv.ObjectMeta, annDynamicallyProvisioned) &&
			pv.Spec.PersistentVolumeReclaimPolicy == v1.PersistentVolumeReclaimDelete {
			continue
		}
		if metav1.HasAnnotation(pv.ObjectMeta, annBoundByController) {
			pv.Spec.ClaimRef = nil
		} else {
			pv.Spec.ClaimRef.UID = ""
		}
		pv.Status.Phase = v1.VolumeAvailable
	}
}

func newReplay(c *cluster, volumes []*v1.PersistentVolume, countTies bool) *replay {
	syncVolumes(c, volumes)
	r := &replay{
		c:         c,
		byModes:   map[uint8][]*v1.PersistentVolume{},
		byClass:   map[string][]*v1.PersistentVolume{},
		byName:    make(map[string]*v1.PersistentVolume, len(volumes)),
		bindings:  make(map[string]string, len(c.named)+len(c.others)),
		countTies: countTies,
	}
	for _, pv := range volumes {
		s := setOf(pv.Spec.AccessModes)
		if _, ok := r.byModes[s.bits]; !ok {
			r.sets = append(r.sets, s)
		}
		r.byModes[s.bits] = append(r.byModes[s.bits], pv)
		class := volume.GetPersistentVolumeClass(pv)
		r.byClass[class] = append(r.byClass[class], pv)
		r.byName[pv.Name] = pv
	}
	sort.Slice(r.sets, func(i, j int) bool {
		a, b := r.sets[i], r.sets[j]
		if a.size() != b.size() {
			return a.size() < b.size()
		}
		return a.bits < b.bits
	})
	return r
}

func (r *replay) bind(pv *v1.PersistentVolume, claim *v1.PersistentVolumeClaim) {
	pv.Spec.ClaimRef = &v1.ObjectReference{
		Kind:      "PersistentVolumeClaim",
		Namespace: claim.Namespace,
		Name:      claim.Name,
		UID:       claim.UID,
	}
	r.bindings[key(claim.Namespace, claim.Name)] = pv.Name
}

func (r *replay) run() error {
	for _, claim := range r.c.named {
		r.syncNamed(claim)
	}
	var waiting []*v1.PersistentVolumeClaim
	for _, claim := range r.c.others {
		delayBinding := r.c.delayed[volume.GetPersistentVolumeClaimClass(claim)]
		pv, err := r.findBestMatchForClaim(claim, delayBinding)
		if err != nil {
			return err
		}
		if pv != nil {
			r.bind(pv, claim)
		} else if delayBinding {
			waiting = append(waiting, claim)
		}
	}
	start := time.Now()
	err := r.schedule(waiting)
	r.scheduling = time.Since(start)
	return err
}

// syncNamed is syncUnboundClaim's spec.volumeName branch.
func (r *replay) syncNamed(claim *v1.PersistentVolumeClaim) {
	pv := r.byName[claim.Spec.VolumeName]
	switch {
	case pv == nil:
	case pv.Spec.ClaimRef == nil:
		if satisfies(pv, claim) {
			r.bind(pv, claim)
		}
	case volume.IsVolumeBoundToClaim(pv, claim):
		r.bind(pv, claim)
	}
}

// satisfies is the PV controller's checkVolumeSatisfyClaim with the
// VolumeAttributesClass gate on.
func satisfies(pv *v1.PersistentVolume, claim *v1.PersistentVolumeClaim) bool {
	requested := claim.Spec.Resources.Requests[v1.ResourceStorage]
	capacity := pv.Spec.Capacity[v1.ResourceStorage]
	return pv.DeletionTimestamp == nil &&
		capacity.Value() >= requested.Value() &&
		volume.GetPersistentVolumeClass(pv) == volume.GetPersistentVolumeClaimClass(claim) &&
		deref(claim.Spec.VolumeAttributesClassName) == deref(pv.Spec.VolumeAttributesClassName) &&
		!volume.CheckVolumeModeMismatches(&claim.Spec, &pv.Spec) &&
		volume.CheckAccessModes(claim, pv)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// findBestMatchForClaim is the PV controller's index search.
func (r *replay) findBestMatchForClaim(claim *v1.PersistentVolumeClaim, delayBinding bool) (*v1.PersistentVolume, error) {
	want := setOf(claim.Spec.AccessModes).bits
	for i, s := range r.sets {
		if s.bits&want != want {
			continue
		}
		pv, err := volume.FindMatchingVolume(claim, r.byModes[s.bits], nil, nil, delayBinding, true)
		if err != nil {
			return nil, err
		}
		if pv != nil {
			if r.countTies && !volume.IsVolumeBoundToClaim(pv, claim) {
				r.ties += r.tie(claim, pv, r.byModes[s.bits], nil, nil, delayBinding, r.sets[i+1:], s.size(), want)
			}
			return pv, nil
		}
	}
	return nil, nil
}

// tie reports (0 or 1) whether another order of the same candidates could
// have made upstream pick differently: another volume of the same capacity
// that FindMatchingVolume accepts in the same list, or, in the controller
// path, a match in another access-mode set of the same size.
func (r *replay) tie(claim *v1.PersistentVolumeClaim, pv *v1.PersistentVolume, list []*v1.PersistentVolume,
	node *v1.Node, excluded map[string]*v1.PersistentVolume, delayBinding bool,
	later []modeSet, size int, want uint8) int {
	without := map[string]*v1.PersistentVolume{pv.Name: pv}
	for k, v := range excluded {
		without[k] = v
	}
	if other, _ := volume.FindMatchingVolume(claim, list, node, without, delayBinding, true); other != nil {
		a, b := pv.Spec.Capacity[v1.ResourceStorage], other.Spec.Capacity[v1.ResourceStorage]
		if a.Cmp(b) == 0 {
			return 1
		}
	}
	for _, s := range later {
		if s.size() != size {
			break
		}
		if s.bits&want != want {
			continue
		}
		if other, _ := volume.FindMatchingVolume(claim, r.byModes[s.bits], node, nil, delayBinding, true); other != nil {
			return 1
		}
	}
	return 0
}

// schedule is VolumeBinding's findMatchingVolumes for pods already on a node.
func (r *replay) schedule(waiting []*v1.PersistentVolumeClaim) error {
	unbound := make(map[string]bool, len(waiting))
	for _, claim := range waiting {
		unbound[key(claim.Namespace, claim.Name)] = true
	}
	for _, pod := range r.c.pods {
		var claims []*v1.PersistentVolumeClaim
		for _, vol := range pod.Spec.Volumes {
			if vol.PersistentVolumeClaim == nil {
				continue
			}
			k := key(pod.Namespace, vol.PersistentVolumeClaim.ClaimName)
			if unbound[k] {
				claims = append(claims, r.c.claims[k])
				delete(unbound, k)
			}
		}
		if len(claims) == 0 {
			continue
		}
		sort.SliceStable(claims, func(i, j int) bool {
			a := claims[i].Spec.Resources.Requests[v1.ResourceStorage]
			b := claims[j].Spec.Resources.Requests[v1.ResourceStorage]
			return a.Cmp(b) < 0
		})
		node := r.c.nodes[pod.Spec.NodeName]
		if node == nil {
			continue
		}
		chosen := map[string]*v1.PersistentVolume{}
		for _, claim := range claims {
			list := r.byClass[volume.GetPersistentVolumeClaimClass(claim)]
			pv, err := volume.FindMatchingVolume(claim, list, node, chosen, true, true)
			if err != nil {
				return err
			}
			if pv == nil {
				continue
			}
			if r.countTies {
				r.ties += r.tie(claim, pv, list, node, chosen, true, nil, 0, 0)
			}
			chosen[pv.Name] = pv
			r.bind(pv, claim)
		}
	}
	return nil
}

func copies(volumes []*v1.PersistentVolume) []*v1.PersistentVolume {
	out := make([]*v1.PersistentVolume, len(volumes))
	for i, pv := range volumes {
		out[i] = pv.DeepCopy()
	}
	return out
}

func emit(v any) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "matching: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	manifest := flag.String("f", "", "cluster manifest (kind: List JSON)")
	bindingsOut := flag.String("bindings", "", "write the last run's bindings here as JSON")
	flag.Parse()
	if *manifest == "" {
		fail("-f is required")
	}
	c, err := load(*manifest)
	if err != nil {
		fail("%v", err)
	}
	emit(map[string]any{"ready": true, "volumes": len(c.volumes), "claims": len(c.claims)})

	var last map[string]string
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.TrimSpace(in.Text())
		switch cmd {
		case "run", "ties":
			volumes := copies(c.volumes)
			runtime.GC()
			start := time.Now()
			r := newReplay(c, volumes, cmd == "ties")
			err := r.run()
			elapsed := time.Since(start)
			if err != nil {
				fail("%v", err)
			}
			last = r.bindings
			if cmd == "run" {
				emit(map[string]any{"ns": elapsed.Nanoseconds(), "scheduler_ns": r.scheduling.Nanoseconds(), "bound": len(r.bindings)})
			} else {
				emit(map[string]any{"ties": r.ties, "bound": len(r.bindings)})
			}
		case "":
		default:
			fail("unknown command %q (want run or ties)", cmd)
		}
	}
	if err := in.Err(); err != nil {
		fail("reading commands: %v", err)
	}
	if *bindingsOut != "" && last != nil {
		data, err := json.Marshal(last)
		if err != nil {
			fail("%v", err)
		}
		if err := os.WriteFile(*bindingsOut, data, 0o644); err != nil {
			fail("%v", err)
		}
	}
}
