package main

// Fault injection and counters, driven through the control endpoint.

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	faultCreateSnapshot = "create-snapshot"
	faultRemoveSnapshot = "remove-snapshot"
	faultConsolidate    = "consolidate-disks"
	faultQuiesce        = "quiesce"
	faultQueryChanged   = "query-changed"
	faultDatastoreRead  = "datastore-read"
	faultDatastoreFull  = "datastore-full"
	faultDatastoreFlip  = "datastore-corrupt"
	faultCBTLose        = "cbt-lose"
	faultDisableMethods = "disable-methods"

	duringWrite  = "write"  // datastore-full: a PUT under /folder fails
	duringCreate = "create" // datastore-full: CreateVM_Task fails
)

var faultKinds = map[string]string{
	faultCreateSnapshot:  "CreateSnapshot_Task's task fails (with ?leave=1 after the snapshot was made)",
	faultRemoveSnapshot:  "RemoveSnapshot_Task/RemoveAllSnapshots_Task's task fails (with ?consolidate=fail after taking the snapshots out of the tree, their deltas left: consolidation needed)",
	faultConsolidate:     "ConsolidateVMDisks_Task's task fails, nothing merged",
	faultQuiesce:         "a quiesced CreateSnapshot_Task of a VM whose Tools run fails with ApplicationQuiesceFault, no snapshot made",
	faultQueryChanged:    "QueryChangedDiskAreas returns a FileFault",
	faultDatastoreRead:   "a GET under /folder has its connection dropped after ?after=BYTES body bytes",
	faultDatastoreFlip:   "the next PUT of a disk's flat extent stores the byte at offset ?after=BYTES flipped, and answers as if all went well",
	faultDisableMethods:  "DisableMethods on the VM fails with NoPermission (Global.DisableMethods), as for a user without that privilege",
	faultCBTLose:         "the next guest write or zero through the control endpoint changes the disk but is not recorded by change tracking (VMware KB 2090639)",
	faultMissingProperty: "RetrievePropertiesEx answers the property ?path=P of the VM (or, with ?object=snapshot, of its snapshots) in missingSet with ?fault=NoPermission (privilegeId ?privilege=, default System.Read) or SystemError",
	faultDatastoreFull:   "the datastore is full: a PUT under /folder fails with HTTP 500 after ?after=BYTES body bytes were stored, or with ?during=create CreateVM_Task fails with NoDiskSpace",
}

// faultRule fires for Times occurrences (-1: forever), on one VM or all.
type faultRule struct {
	Kind   string `json:"kind"`
	VM     string `json:"vm,omitempty"`
	Times  int    `json:"times"`
	After  int64  `json:"after,omitempty"`  // datastore-read: body bytes sent before the drop; datastore-full: bytes stored before the failure; datastore-corrupt: the offset flipped
	Leave  bool   `json:"leave,omitempty"`  // create-snapshot: the snapshot exists when the task fails
	During string `json:"during,omitempty"` // datastore-full: write or create
	// Consolidate "fail" (remove-snapshot): the snapshots leave the tree, their deltas stay.
	Consolidate string `json:"consolidate,omitempty"`
	// missing-property: the property path, whose (vm or snapshot), the fault and NoPermission's privilege.
	Path      string `json:"path,omitempty"`
	Object    string `json:"object,omitempty"`
	Fault     string `json:"fault,omitempty"`
	Privilege string `json:"privilege,omitempty"`
}

func (r faultRule) leavesDeltas() bool { return r.Consolidate == "fail" }

type faults struct {
	mu    sync.Mutex
	rules []*faultRule
}

func (f *faults) add(r faultRule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &r)
}

// take consumes one occurrence of the first rule matching kind and vm.
func (f *faults) take(kind, vm string) (faultRule, bool) {
	return f.takeIf(kind, vm, func(faultRule) bool { return true })
}

// takeIf is take for the rules that also satisfy want.
func (f *faults) takeIf(kind, vm string, want func(faultRule) bool) (faultRule, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.Kind != kind || (r.VM != "" && r.VM != vm) || !want(*r) {
			continue
		}
		fired := *r
		if r.Times > 0 {
			r.Times--
			if r.Times == 0 {
				f.rules = append(f.rules[:i], f.rules[i+1:]...)
			}
		}
		return fired, true
	}
	return faultRule{}, false
}

// clear removes the rules of one kind, or all for "".
func (f *faults) clear(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.rules[:0]
	for _, r := range f.rules {
		if kind != "" && r.Kind != kind {
			kept = append(kept, r)
		}
	}
	n := len(f.rules) - len(kept)
	f.rules = kept
	return n
}

func (f *faults) list() []faultRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []faultRule{}
	for _, r := range f.rules {
		out = append(out, *r)
	}
	return out
}

func faultKindNames() []string {
	var names []string
	for k := range faultKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// injected words the message of an injected fault.
func injected(op string) string { return "lab: injected fault in " + op }

// stats are counters for tests; snapshot counts are kept as the lab changes
// them so reading them never needs every VM's lock.
type stats struct {
	snapshotsNow    atomic.Int64
	vmbkpNow        atomic.Int64
	maxVmbkp        atomic.Int64
	folderBytes     atomic.Int64
	folderPut       atomic.Int64 // body bytes stored by PUTs under /folder
	queryChanged    atomic.Int64
	nfcProgress     atomic.Int64 // HttpNfcLeaseProgress calls
	nfcExpired      atomic.Int64 // leases timed out
	nfcAborted      atomic.Int64 // leases aborted
	nfcBytes        atomic.Int64 // bytes served under /nfc
	nfcImported     atomic.Int64 // disk bytes (decoded grains) stored by uploads under /nfc
	descriptorBytes atomic.Int64 // bytes of disk descriptors served under /folder
	reads           diskAccess   // GETs under /folder
	writes          diskAccess   // PUTs under /folder
}

// diskAccess tracks which disk files of each VM are being read (or written)
// through /folder right now, so tests can see whether one VM's disks are
// handled in parallel.
type diskAccess struct {
	mu      sync.Mutex
	open    map[string]map[string]int // VM directory -> file -> requests in flight
	max     int                       // most files of one VM read at once
	changed chan struct{}             // closed (and replaced) whenever a file is opened
	gate    *accessGate               // nil: accesses never wait
}

// accessGate makes each VM's first accesses wait until `files` of its disk
// files are open at once (or `wait` passes), so a test sees whether disks are
// handled in parallel whatever the machine's timing. Once a VM got there, or
// its wait ran out, its accesses pass straight through.
type accessGate struct {
	files  int
	wait   time.Duration
	passed map[string]bool // VM directories let through
}

// disksOpen counts the disk files of vm in flight; call with mu held.
func (d *diskAccess) disksOpen(vm string) int {
	n := 0
	for file := range d.open[vm] {
		if strings.HasSuffix(file, ".vmdk") {
			n++
		}
	}
	return n
}

// setGate arms (files > 1) or disarms the gate.
func (d *diskAccess) setGate(files int, wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Transfers held by the old gate go on now (they see the gate changed).
	if d.changed != nil {
		close(d.changed)
	}
	d.changed = make(chan struct{})
	if files < 2 {
		d.gate = nil
		return
	}
	d.gate = &accessGate{files: files, wait: wait, passed: map[string]bool{}}
}

// await holds an access to a disk file of vm until the gate lets it through.
// Other files (.vmx, .nvram) pass: only disks are transferred in parallel.
func (d *diskAccess) await(vm, file string) {
	if !strings.HasSuffix(file, ".vmdk") {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.gate
	if g == nil || g.passed[vm] {
		return
	}
	timeout := time.NewTimer(g.wait)
	defer timeout.Stop()
	for d.disksOpen(vm) < g.files && d.gate == g && !g.passed[vm] {
		changed := d.changed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			d.mu.Lock()
			g.passed[vm] = true
			return
		}
		d.mu.Lock()
	}
	g.passed[vm] = true
}

// begin records an access to file in VM directory vm; the returned func ends it.
func (d *diskAccess) begin(vm, file string) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open == nil {
		d.open = map[string]map[string]int{}
	}
	files := d.open[vm]
	if files == nil {
		files = map[string]int{}
		d.open[vm] = files
	}
	files[file]++
	if len(files) > d.max {
		d.max = len(files)
	}
	if d.changed != nil {
		close(d.changed)
	}
	d.changed = make(chan struct{})
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if files[file]--; files[file] == 0 {
			delete(files, file)
		}
	}
}

func (d *diskAccess) maxAtOnce() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.max
}

func (d *diskAccess) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.max = 0
}

func isVmbkp(name string) bool { return strings.HasPrefix(name, "vmbkp-") }

func (s *stats) snapshotAdded(name string) {
	s.snapshotsNow.Add(1)
	if !isVmbkp(name) {
		return
	}
	n := s.vmbkpNow.Add(1)
	for {
		max := s.maxVmbkp.Load()
		if n <= max || s.maxVmbkp.CompareAndSwap(max, n) {
			return
		}
	}
}

func (s *stats) snapshotRemoved(name string) {
	s.snapshotsNow.Add(-1)
	if isVmbkp(name) {
		s.vmbkpNow.Add(-1)
	}
}

func (s *stats) reset() {
	s.maxVmbkp.Store(s.vmbkpNow.Load())
	s.folderBytes.Store(0)
	s.folderPut.Store(0)
	s.queryChanged.Store(0)
	s.nfcProgress.Store(0)
	s.nfcExpired.Store(0)
	s.nfcAborted.Store(0)
	s.nfcBytes.Store(0)
	s.nfcImported.Store(0)
	s.descriptorBytes.Store(0)
	s.reads.reset()
	s.writes.reset()
}

type statsView struct {
	SnapshotsNow      int64 `json:"snapshotsNow"`
	VmbkpSnapshotsNow int64 `json:"vmbkpSnapshotsNow"`
	MaxVmbkpSnapshots int64 `json:"maxVmbkpSnapshots"`
	FolderBytesServed int64 `json:"folderBytesServed"`
	FolderBytesStored int64 `json:"folderBytesStored"`
	QueryChangedCalls int64 `json:"queryChangedCalls"`
	// MaxDisksReadAtOnce is the most disk files of one VM read through /folder at once.
	MaxDisksReadAtOnce int `json:"maxDisksReadAtOnce"`
	// MaxDisksWrittenAtOnce is the most disk files of one VM written (PUT) at once.
	MaxDisksWrittenAtOnce int   `json:"maxDisksWrittenAtOnce"`
	NfcLeasesHeld         int64 `json:"nfcLeasesHeld"`
	NfcLeaseProgressCalls int64 `json:"nfcLeaseProgressCalls"`
	NfcLeasesExpired      int64 `json:"nfcLeasesExpired"`
	NfcLeasesAborted      int64 `json:"nfcLeasesAborted"`
	NfcBytesServed        int64 `json:"nfcBytesServed"`
	NfcBytesImported      int64 `json:"nfcBytesImported"`
	DescriptorBytesServed int64 `json:"descriptorBytesServed"`
}

func (s *stats) view() statsView {
	return statsView{
		SnapshotsNow:          s.snapshotsNow.Load(),
		VmbkpSnapshotsNow:     s.vmbkpNow.Load(),
		MaxVmbkpSnapshots:     s.maxVmbkp.Load(),
		FolderBytesServed:     s.folderBytes.Load(),
		FolderBytesStored:     s.folderPut.Load(),
		QueryChangedCalls:     s.queryChanged.Load(),
		MaxDisksReadAtOnce:    s.reads.maxAtOnce(),
		MaxDisksWrittenAtOnce: s.writes.maxAtOnce(),
		NfcLeaseProgressCalls: s.nfcProgress.Load(),
		NfcLeasesExpired:      s.nfcExpired.Load(),
		NfcLeasesAborted:      s.nfcAborted.Load(),
		NfcBytesServed:        s.nfcBytes.Load(),
		NfcBytesImported:      s.nfcImported.Load(),
		DescriptorBytesServed: s.descriptorBytes.Load(),
	}
}
