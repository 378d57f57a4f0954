package main

// The control endpoint: plain HTTP on 127.0.0.1 for tests to play the guest,
// inspect disks and inject faults. Routes live in one table; add a row to
// add an endpoint.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type params map[string]string

type route struct {
	method  string
	pattern string // "/vms/{vm}/disks/{key}/write"
	doc     string
	handle  func(lab *Lab, w http.ResponseWriter, r *http.Request, p params)
}

var routes []route

// The table is filled in init because listRoutes reads it.
func init() {
	routes = []route{
		{"GET", "/", "this list", listRoutes},
		{"GET", "/vms", "VMs with disks, CBT and snapshots", listVMs},
		{"GET", "/vms/{vm}", "one VM", getVM},
		{"POST", "/vms/{vm}/power", "?state=on|off: power the VM on or off", powerVM},
		{"POST", "/vms/{vm}/tools", "?state=running|notRunning|notInstalled: VMware Tools in the guest", setTools},
		{"POST", "/vms/{vm}/instance-uuid", "[?uuid=U]: give the VM another instance UUID (default: a random one), keeping everything else", setInstanceUUID},
		{"POST", "/vms/{vm}/nvram", "body = bytes: the firmware stores new settings (EFI variables, boot order) in the VM's nvram file", setNvram},
		{"POST", "/vms/{vm}/relocate", "?datastore=NAME: RelocateVM_Task to that datastore (storage vMotion), as a vCenter user would; 409 when the method is disabled", relocateVM},
		{"POST", "/vms/{vm}/slow-tasks", "?steps=N&stepMs=M[&stallAt=P]: the VM's RemoveSnapshot_Task raises its progress in N steps of M ms, or stops at P% until DELETE", setSlowTasks},
		{"DELETE", "/vms/{vm}/slow-tasks", "RemoveSnapshot_Task quick again; stalled ones finish", setSlowTasks},
		{"POST", "/vms/{vm}/disks/{key}/write", "?offset=N, body = bytes: a guest write", diskWrite},
		{"POST", "/vms/{vm}/disks/{key}/zero", "?offset=N&length=M: a guest write of zeros", diskZero},
		{"GET", "/vms/{vm}/disks/{key}/sha256", "[?snapshot=MOREF]: SHA-256 of the current or a snapshot's view", diskHash},
		{"GET", "/vms/{vm}/disks/{key}/read", "[?snapshot=MOREF]: the whole view (Range supported)", diskRead},
		{"GET", "/faults", "active fault rules", listFaults},
		{"POST", "/faults/{kind}", "[?vm=NAME][&times=K][&after=BYTES][&leave=1][&during=write|create][&consolidate=fail]: inject a fault", addFault},
		{"DELETE", "/faults", "clear all fault rules", clearFaults},
		{"DELETE", "/faults/{kind}", "clear the rules of one kind", clearFaults},
		{"POST", "/sessions/expire", "invalidate every SOAP session", expireSessions},
		{"GET", "/stats", "counters", getStats},
		{"POST", "/stats/reset", "reset the counters and the high-water mark", resetStats},
		{"POST", "/folder/gate", "?files=N&waitMs=M: each VM's first GETs (PUTs) under /folder wait until N of its files are read (written) at once, or M ms pass", setFolderGate},
		{"DELETE", "/folder/gate", "GETs and PUTs under /folder no longer wait", setFolderGate},
		{"POST", "/nfc/lease-timeout", "?seconds=S: export leases made from now on time out after S seconds without progress", setLeaseTimeout},
	}
	routes = append(append(routes, pcRoutes()...), userRoutes()...)
}

// match binds {name} segments of pattern to the path.
func match(pattern, p string) (params, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(p, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	out := params{}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			out[strings.Trim(ps[i], "{}")] = xs[i]
		} else if ps[i] != xs[i] {
			return nil, false
		}
	}
	return out, true
}

func (lab *Lab) controlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowed := false
		for _, rt := range routes {
			p, ok := match(rt.pattern, r.URL.Path)
			if !ok {
				continue
			}
			if rt.method == r.Method {
				rt.handle(lab, w, r, p)
				return
			}
			allowed = true
		}
		if allowed {
			fail(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
			return
		}
		fail(w, http.StatusNotFound, "no such endpoint: %s %s (GET / lists them)", r.Method, r.URL.Path)
	})
}

func reply(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, args ...interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

func listRoutes(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	var out []map[string]string
	for _, rt := range routes {
		out = append(out, map[string]string{"method": rt.method, "path": rt.pattern, "doc": rt.doc})
	}
	reply(w, out)
}

type diskJSON struct {
	Key           int32    `json:"key"`
	Label         string   `json:"label"`
	ControllerKey int32    `json:"controllerKey"`
	UnitNumber    int32    `json:"unitNumber"`
	Thin          bool     `json:"thin"`
	FileName      string   `json:"fileName"`
	Capacity      int64    `json:"capacity"`
	ChangeID      string   `json:"changeId"`
	Path          string   `json:"path"`       // host path of the running layer's descriptor
	ExtentPath    string   `json:"extentPath"` // host path of the running layer's extent
	Chain         []string `json:"chain"`      // descriptor names, base first
}

type snapshotJSON struct {
	Moref  string `json:"moref"`
	Name   string `json:"name"`
	Parent string `json:"parent"` // the parent snapshot's moref, "" for a root
}

// controllerJSON is a storage controller (SCSI, SATA, NVMe, IDE).
type controllerJSON struct {
	Key       int32  `json:"key"`
	Type      string `json:"type"`
	BusNumber int32  `json:"busNumber"`
}

type nicJSON struct {
	Key         int32  `json:"key"`
	Type        string `json:"type"`
	Network     string `json:"network"`
	MacAddress  string `json:"macAddress"`
	AddressType string `json:"addressType"`
}

type vmJSON struct {
	Name            string           `json:"name"`
	Moref           string           `json:"moref"`
	PowerState      string           `json:"powerState"`
	Tools           string           `json:"tools"` // running, notRunning or notInstalled (running only counts while powered on)
	CBT             bool             `json:"cbt"`
	UUID            string           `json:"uuid"`
	InstanceUUID    string           `json:"instanceUuid"`
	CurrentSnapshot string           `json:"currentSnapshot"` // moref of the snapshot the running point descends from, or ""
	Dir             string           `json:"dir"`             // host path of the VM's directory
	Firmware        string           `json:"firmware"`        // bios or efi
	Vmx             string           `json:"vmx"`             // host path of the .vmx
	Nvram           string           `json:"nvram"`           // host path of the nvram file
	Controllers     []controllerJSON `json:"controllers"`
	NICs            []nicJSON        `json:"nics"`
	Disks           []diskJSON       `json:"disks"`
	Snapshots       []snapshotJSON   `json:"snapshots"`

	// CBTPending: CBT is on in the config, waiting for a stun-unstun cycle.
	CBTPending bool `json:"cbtPending"`
	// ConsolidationNeeded: a failed consolidation left deltas no snapshot needs.
	ConsolidationNeeded bool `json:"consolidationNeeded"`
}

func (vm *LabVM) describe() vmJSON {
	vm.Lock()
	defer vm.Unlock()
	out := vmJSON{Name: vm.Name, Moref: vm.Self.Value, PowerState: string(vm.Runtime.PowerState), Tools: vm.toolsState(), CBT: vm.cbtOn,
		CBTPending: vm.cbtPending, ConsolidationNeeded: vm.consolidationNeeded(),
		UUID: vm.Config.Uuid, InstanceUUID: vm.Config.InstanceUuid, Dir: vm.dir(), Firmware: vm.Config.Firmware, Vmx: vm.vmxPath(), Nvram: vm.nvramPath(), Controllers: []controllerJSON{}, NICs: []nicJSON{}, Disks: []diskJSON{}, Snapshots: []snapshotJSON{}}
	for _, dev := range vm.Config.Hardware.Device {
		typ := reflect.TypeOf(dev).Elem().Name()
		switch x := dev.(type) {
		case types.BaseVirtualSCSIController, types.BaseVirtualSATAController, *types.VirtualNVMEController, *types.VirtualIDEController:
			c := x.(types.BaseVirtualController).GetVirtualController()
			out.Controllers = append(out.Controllers, controllerJSON{Key: c.Key, Type: typ, BusNumber: c.BusNumber})
		case types.BaseVirtualEthernetCard:
			card := x.GetVirtualEthernetCard()
			n := nicJSON{Key: card.Key, Type: typ, MacAddress: card.MacAddress, AddressType: card.AddressType}
			switch b := card.Backing.(type) {
			case *types.VirtualEthernetCardNetworkBackingInfo:
				n.Network = b.DeviceName
			case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
				n.Network = b.Port.PortgroupKey
			}
			out.NICs = append(out.NICs, n)
		}
	}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for _, d := range vm.disks {
		var ctlKey, unit int32
		if vd, ok := devices.FindByKey(d.key).(*types.VirtualDisk); ok {
			ctlKey = vd.ControllerKey
		}
		unit = d.unit
		var names []string
		for _, l := range chain(d.top) {
			names = append(names, l.descriptorName())
		}
		out.Disks = append(out.Disks, diskJSON{
			Key: d.key, Label: d.label, ControllerKey: ctlKey, UnitNumber: unit, Thin: d.thin, FileName: vm.dsPath(d.top.descriptorName()), Capacity: d.capacity,
			ChangeID: d.cbt.current, Path: d.top.descriptorPath(), ExtentPath: d.top.extentPath(), Chain: names,
		})
	}
	for _, s := range vm.snaps {
		j := snapshotJSON{Moref: s.Self.Value, Name: s.name}
		if s.parent != nil {
			j.Parent = s.parent.Self.Value
		}
		out.Snapshots = append(out.Snapshots, j)
	}
	if vm.current != nil {
		out.CurrentSnapshot = vm.current.Self.Value
	}
	return out
}

func listVMs(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	out := []vmJSON{}
	for _, vm := range lab.allVMs() {
		out = append(out, vm.describe())
	}
	reply(w, out)
}

func getVM(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	if vm := lab.vm(p["vm"]); vm != nil {
		reply(w, vm.describe())
		return
	}
	fail(w, http.StatusNotFound, "no VM named %q", p["vm"])
}

func powerVM(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return
	}
	// Through the simulator in process (not under the VM's lock: the call takes it).
	ctx := r.Context()
	obj := object.NewVirtualMachine(lab.client, vm.Self)
	var task *object.Task
	var err error
	switch r.URL.Query().Get("state") {
	case "on":
		task, err = obj.PowerOn(ctx)
	case "off":
		task, err = obj.PowerOff(ctx)
	default:
		fail(w, http.StatusBadRequest, "state must be on or off")
		return
	}
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "powering %s %s: %v", vm.Name, r.URL.Query().Get("state"), err)
		return
	}
	reply(w, vm.describe())
}

func setTools(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return
	}
	state := r.URL.Query().Get("state")
	if !validToolsState(state) {
		fail(w, http.StatusBadRequest, "state must be running, notRunning or notInstalled")
		return
	}
	vm.Lock()
	vm.tools = state
	vm.publishGuest()
	vm.Unlock()
	reply(w, vm.describe())
}

// setInstanceUUID models the VM's files registered anew (a copy of its directory,
// another vCenter): vCenter's VM has another instance UUID, and the advanced
// settings and disks the files carry.
func setInstanceUUID(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return
	}
	id := r.URL.Query().Get("uuid")
	if id == "" {
		id = randomUUID()
	}
	vm.Lock()
	vm.Config.InstanceUuid = id
	vm.Summary.Config.InstanceUuid = id
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "config.instanceUuid", Val: id},
		{Name: "summary.config.instanceUuid", Val: id},
	})
	vm.Unlock()
	reply(w, vm.describe())
}

// setNvram replaces the VM's nvram file, as its firmware does when the guest or the
// setup screen changes a setting → {"size","sha256"}.
func setNvram(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || len(body) == 0 {
		fail(w, http.StatusBadRequest, "the body must be the new nvram contents")
		return
	}
	vm.Lock()
	err = os.WriteFile(vm.nvramPath(), body, 0o600)
	vm.Unlock()
	if err != nil {
		fail(w, http.StatusInternalServerError, "writing the nvram of %s: %v", vm.Name, err)
		return
	}
	sum := sha256.Sum256(body)
	reply(w, map[string]interface{}{"size": len(body), "sha256": hex.EncodeToString(sum[:])})
}

// lookupVM resolves {vm}, answering 404 itself.
func lookupVM(lab *Lab, w http.ResponseWriter, p params) *LabVM {
	vm := lab.vm(p["vm"])
	if vm == nil {
		fail(w, http.StatusNotFound, "no VM named %q", p["vm"])
	}
	return vm
}

// lookupDisk resolves {vm} and {key}, answering 404 itself.
func lookupDisk(lab *Lab, w http.ResponseWriter, p params) (*LabVM, *disk) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return nil, nil
	}
	key, _ := strconv.Atoi(p["key"])
	vm.Lock()
	d := vm.disk(int32(key))
	vm.Unlock()
	if d == nil {
		fail(w, http.StatusNotFound, "%s has no disk with key %q", vm.Name, p["key"])
		return nil, nil
	}
	return vm, d
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		if def < 0 {
			return 0, fmt.Errorf("query parameter %q is required", name)
		}
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query parameter %q: %v", name, err)
	}
	return n, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("query parameter %q: %v", name, err)
	}
	return b, nil
}

func diskWrite(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm, d := lookupDisk(lab, w, p)
	if d == nil {
		return
	}
	off, err := intParam(r, "offset", -1)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	vm.Lock()
	room := d.capacity - off
	vm.Unlock()
	data, err := io.ReadAll(io.LimitReader(r.Body, room+1))
	if err != nil {
		fail(w, http.StatusBadRequest, "reading body: %v", err)
		return
	}
	if off >= 0 && int64(len(data)) > room {
		fail(w, http.StatusBadRequest, "a write at %d of more than %d bytes goes past the end of the disk (capacity %d)", off, room, off+room)
		return
	}
	vm.Lock()
	defer vm.Unlock()
	if err := d.write(data, off); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	recordWrite(lab, vm, d, off, int64(len(data)))
	reply(w, map[string]int64{"offset": off, "length": int64(len(data))})
}

func diskZero(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm, d := lookupDisk(lab, w, p)
	if d == nil {
		return
	}
	off, err := intParam(r, "offset", -1)
	var n int64
	if err == nil {
		n, err = intParam(r, "length", -1)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	vm.Lock()
	defer vm.Unlock()
	if err := d.zero(off, n); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	recordWrite(lab, vm, d, off, n)
	reply(w, map[string]int64{"offset": off, "length": n})
}

// recordWrite logs a guest write for change tracking, unless a cbt-lose
// fault makes tracking miss it: the data changed, CBT does not say so, as in
// VMware KB 2090639 (QueryChangedDiskAreas API returns incorrect sectors) and
// KB 317933 (changed blocks lost around snapshot consolidation).
func recordWrite(lab *Lab, vm *LabVM, d *disk, off, n int64) {
	if _, lost := lab.faults.take(faultCBTLose, vm.Name); lost {
		return
	}
	d.cbt.record(off, n, d.capacity)
}

// viewTop resolves ?snapshot= to the frozen layer; call with the lock held.
func viewTop(vm *LabVM, d *disk, snapshot string) (*layer, error) {
	if snapshot == "" {
		return d.top, nil
	}
	s := vm.snapshot(types.ManagedObjectReference{Type: "VirtualMachineSnapshot", Value: snapshot})
	if s == nil {
		return nil, fmt.Errorf("%s has no snapshot %q", vm.Name, snapshot)
	}
	return s.tops[d.key], nil
}

func diskHash(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm, d := lookupDisk(lab, w, p)
	if d == nil {
		return
	}
	vm.Lock()
	defer vm.Unlock()
	top, err := viewTop(vm, d, r.URL.Query().Get("snapshot"))
	if err != nil {
		fail(w, http.StatusNotFound, "%v", err)
		return
	}
	sum, err := d.hashView(top)
	if err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	reply(w, map[string]interface{}{"sha256": sum, "size": d.capacity})
}

func diskRead(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm, d := lookupDisk(lab, w, p)
	if d == nil {
		return
	}
	snapshot := r.URL.Query().Get("snapshot")
	vm.Lock()
	_, err := viewTop(vm, d, snapshot)
	size := d.capacity
	vm.Unlock()
	if err != nil {
		fail(w, http.StatusNotFound, "%v", err)
		return
	}
	view := &viewReader{vm: vm, d: d, resolve: func() (*layer, error) { return viewTop(vm, d, snapshot) }}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(view, 0, size))
}

func listFaults(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	reply(w, lab.faults.list())
}

func addFault(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	kind := p["kind"]
	if _, ok := faultKinds[kind]; !ok {
		fail(w, http.StatusNotFound, "unknown fault %q (known: %s)", kind, strings.Join(faultKindNames(), ", "))
		return
	}
	rule := faultRule{Kind: kind, VM: r.URL.Query().Get("vm")}
	// Datastore faults may name a VM that does not exist yet (the one a restore creates).
	if rule.VM != "" && kind != faultDatastoreFull && kind != faultDatastoreFlip && lab.vm(rule.VM) == nil {
		fail(w, http.StatusNotFound, "no VM named %q", rule.VM)
		return
	}
	times, err := intParam(r, "times", 1)
	if err == nil && (times == 0 || times < -1) {
		err = fmt.Errorf("times must be a positive count or -1 (forever)")
	}
	if err == nil && (kind == faultDatastoreRead || kind == faultDatastoreFull || kind == faultDatastoreFlip) {
		rule.After, err = intParam(r, "after", 0)
		if err == nil && rule.After < 0 {
			err = fmt.Errorf("after must not be negative")
		}
	}
	if err == nil && kind == faultDatastoreFull {
		switch rule.During = r.URL.Query().Get("during"); rule.During {
		case "":
			rule.During = duringWrite
		case duringWrite, duringCreate:
		default:
			err = fmt.Errorf("during must be write or create")
		}
		if rule.During == duringCreate && rule.After != 0 {
			err = fmt.Errorf("after applies to during=write only")
		}
	}
	if err == nil && kind == faultCreateSnapshot {
		rule.Leave, err = boolParam(r, "leave")
	}
	if err == nil && kind == faultRemoveSnapshot {
		if rule.Consolidate = r.URL.Query().Get("consolidate"); rule.Consolidate != "" && rule.Consolidate != "fail" {
			err = fmt.Errorf("consolidate must be fail")
		}
	}
	if err == nil && kind == faultMissingProperty {
		err = parseMissingProperty(r, &rule)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	rule.Times = int(times)
	lab.faults.add(rule)
	reply(w, rule)
}

func clearFaults(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	reply(w, map[string]int{"cleared": lab.faults.clear(p["kind"])})
}

func expireSessions(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	reply(w, map[string]int{"expired": lab.sessions.expireAll()})
}

func getStats(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	v := lab.stats.view()
	v.NfcLeasesHeld = lab.leasesHeld()
	reply(w, v)
}

func resetStats(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	lab.stats.reset()
	reply(w, lab.stats.view())
}

func setFolderGate(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	if r.Method == http.MethodDelete {
		lab.stats.reads.setGate(0, 0)
		lab.stats.writes.setGate(0, 0)
		reply(w, map[string]int64{"files": 0})
		return
	}
	files, err := intParam(r, "files", -1)
	var waitMs int64
	if err == nil {
		waitMs, err = intParam(r, "waitMs", 10000)
	}
	if err == nil && (files < 2 || waitMs < 1) {
		err = fmt.Errorf("files must be at least 2 and waitMs at least 1")
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	lab.stats.reads.setGate(int(files), time.Duration(waitMs)*time.Millisecond)
	lab.stats.writes.setGate(int(files), time.Duration(waitMs)*time.Millisecond)
	reply(w, map[string]int64{"files": files, "waitMs": waitMs})
}

// relocateVM calls RelocateVM_Task through the simulator in process, so a
// disabled method refuses it as it would a vCenter user.
func relocateVM(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return
	}
	to, ok := lab.storeNamed(r.URL.Query().Get("datastore"))
	if !ok {
		fail(w, http.StatusBadRequest, "datastore must be %s or %s", lab.dsName, secondDatastore)
		return
	}
	ctx := r.Context()
	ref := to.ref
	task, err := object.NewVirtualMachine(lab.client, vm.Self).Relocate(ctx, types.VirtualMachineRelocateSpec{Datastore: &ref}, types.VirtualMachineMovePriorityDefaultPriority)
	if err != nil {
		fail(w, http.StatusConflict, "relocating %s to %s: %v", vm.Name, to.name, err)
		return
	}
	if err := task.Wait(ctx); err != nil {
		fail(w, http.StatusBadRequest, "relocating %s to %s: %v", vm.Name, to.name, err)
		return
	}
	reply(w, vm.describe())
}
