package main

// The lab's VirtualMachine: the simulator's VM, wrapped so that snapshots,
// reconfiguration and QueryChangedDiskAreas act on real disk files.

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	scsiKey   = 1000
	firstDisk = 2000
	firstNIC  = 4000
	pciKey    = 100
	vmNetwork = "VM Network"
	guestID   = "other3xLinux64Guest"
	maxDisks  = 15 // one SCSI controller
	maxNICs   = 10
)

// Lab holds what the lab adds to the simulator.
type Lab struct {
	dsName, dcName string
	dsDir          string
	dsRef          types.ManagedObjectReference
	cbtPage        int64
	client         *vim25.Client // in-process, for the control endpoint's power changes
	vmsMu          sync.Mutex    // vms changes at run time (CreateVM_Task, Destroy_Task)
	vms            []*LabVM
	faults         faults
	stats          stats
	sessions       sessions
	second         *labStore // LocalDS_1, where a relocation can move VMs (relocate.go)
	slow           slowTasks // slowtask.go
	users          users     // lab users other than the administrator (roles.go)
	password       string    // the administrator's
	pc             pcState   // property collector paging (pc.go)
	leases         leases    // export leases (nfc.go)
	httpsPort      int       // of /sdk, /folder and /nfc
	sslThumbprint  string    // SHA-1 of the HTTPS certificate, for lease URLs
}

func (lab *Lab) vm(name string) *LabVM {
	for _, vm := range lab.allVMs() {
		if vm.Name == name {
			return vm
		}
	}
	return nil
}

// allVMs is a copy of the lab's VM list, safe to range over while VMs come and go.
func (lab *Lab) allVMs() []*LabVM {
	lab.vmsMu.Lock()
	defer lab.vmsMu.Unlock()
	return append([]*LabVM(nil), lab.vms...)
}

func (lab *Lab) addVM(vm *LabVM) {
	lab.vmsMu.Lock()
	defer lab.vmsMu.Unlock()
	lab.vms = append(lab.vms, vm)
}

func (lab *Lab) removeVM(vm *LabVM) {
	lab.vmsMu.Lock()
	defer lab.vmsMu.Unlock()
	for i, v := range lab.vms {
		if v == vm {
			lab.vms = append(lab.vms[:i:i], lab.vms[i+1:]...)
			return
		}
	}
}

// LabVM embeds the simulator's VM by value: the PropertyCollector finds the
// mo.VirtualMachine through the first field, and the methods defined here
// win over the simulator's when a SOAP call is dispatched.
type LabVM struct {
	simulator.VirtualMachine

	lab     *Lab
	lk      sync.Mutex
	dirName string // the VM's directory on the datastore ("lab-vm-1", or what CreateVM_Task chose)
	disks   []*disk
	snaps   []*LabSnapshot // oldest first; each knows its parent (the tree)
	current *LabSnapshot   // the snapshot the running point descends from
	cbtOn   bool
	sid     int32

	// cbtPending: CBT was turned on while the VM ran; it takes effect at the
	// next stun-unstun cycle (power on, snapshot create or remove,
	// consolidation), as the VDDK programming guide says, and until then the
	// disks carry no changeId.
	cbtPending bool

	// leftovers: layers a failed consolidation left (the removed snapshots'
	// deltas), kept until ConsolidateVMDisks_Task: runtime.consolidationNeeded.
	leftovers map[*layer]bool
	tools     string // VMware Tools in the guest (tools.go); "" is running

	moved    *labStore                    // the datastore a relocation moved the VM to (relocate.go); nil: the primary
	disabled map[string]map[string]bool   // method → sources that disabled it (relocate.go)
	busy     types.ManagedObjectReference // a slow task running on the VM (slowtask.go)
}

// Lock and Unlock make the simulator's registry use lk as this VM's object
// lock (it prefers a sync.Locker), and LabSnapshot uses it too. So SOAP
// calls, property collection of the VM and its snapshots, and the control
// endpoint all serialize on one lock and never take two.
func (vm *LabVM) Lock()   { vm.lk.Lock() }
func (vm *LabVM) Unlock() { vm.lk.Unlock() }

func (vm *LabVM) disk(key int32) *disk {
	for _, d := range vm.disks {
		if d.key == key {
			return d
		}
	}
	return nil
}

func (vm *LabVM) snapshot(ref types.ManagedObjectReference) *LabSnapshot {
	for _, s := range vm.snaps {
		if s.Self == ref {
			return s
		}
	}
	return nil
}

// dsPath names a file of the VM's directory in datastore form.
func (vm *LabVM) dsPath(file string) string {
	return fmt.Sprintf("[%s] %s/%s", vm.store().name, vm.dirName, file)
}

func (vm *LabVM) dir() string { return filepath.Join(vm.store().dir, vm.dirName) }

type vmOptions struct {
	disks, nics int
	diskSize    int64
	firmware    string // bios or efi
}

// createVM creates a VM through the simulator (so inventory, events and the
// .vmx/.nvram/.log files are as usual), adds disks backed by lab files, swaps
// in the wrapper and powers it on.
func (lab *Lab) createVM(ctx context.Context, c *vim25.Client, folder *object.Folder, pool *object.ResourcePool, host *object.HostSystem, name string, o vmOptions) (*LabVM, error) {
	devices := object.VirtualDeviceList{scsiController()}
	for i := 0; i < o.nics; i++ {
		devices = append(devices, vmxnet3(i))
	}
	change, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return nil, err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:         name,
		GuestId:      guestID,
		NumCPUs:      2,
		MemoryMB:     1024,
		Files:        &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s] %s/%s.vmx", lab.dsName, name, name)},
		DeviceChange: change,
		Firmware:     o.firmware,
	}
	task, err := folder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	ref := info.Result.(types.ManagedObjectReference)

	vm := &LabVM{VirtualMachine: *simulator.Map.Get(ref).(*simulator.VirtualMachine), lab: lab, dirName: name}
	var keys []int32
	for i := 0; i < o.disks; i++ {
		d, err := createDisk(vm.dir(), name, i, int32(firstDisk+i), o.diskSize)
		if err != nil {
			return nil, fmt.Errorf("create disk %d of %s: %w", i, name, err)
		}
		vm.disks = append(vm.disks, d)
		keys = append(keys, d.key)
		unit := d.unit
		vm.Config.Hardware.Device = append(vm.Config.Hardware.Device, &types.VirtualDisk{
			VirtualDevice: types.VirtualDevice{Key: d.key, ControllerKey: scsiKey, UnitNumber: &unit},
		})
	}
	if ctl, ok := object.VirtualDeviceList(vm.Config.Hardware.Device).FindByKey(scsiKey).(types.BaseVirtualController); ok {
		ctl.GetVirtualController().Device = keys
	}
	vm.Capability.ChangeTrackingSupported = types.NewBool(true)
	vm.Config.ChangeTrackingEnabled = types.NewBool(false)
	simulator.Map.Put(vm)
	vm.Lock()
	vm.publish()
	vm.Unlock()

	ptask, err := object.NewVirtualMachine(c, ref).PowerOn(ctx)
	if err == nil {
		err = ptask.Wait(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("power on %s: %w", name, err)
	}
	return vm, nil
}

func scsiController() *types.ParaVirtualSCSIController {
	return &types.ParaVirtualSCSIController{VirtualSCSIController: types.VirtualSCSIController{
		VirtualController: types.VirtualController{
			VirtualDevice: types.VirtualDevice{
				Key:           scsiKey,
				ControllerKey: pciKey,
				UnitNumber:    types.NewInt32(3),
				DeviceInfo:    &types.Description{Label: "SCSI controller 0", Summary: "VMware paravirtual SCSI"},
			},
		},
		HotAddRemove:       types.NewBool(true),
		SharedBus:          types.VirtualSCSISharingNoSharing,
		ScsiCtlrUnitNumber: 7,
	}}
}

func vmxnet3(i int) *types.VirtualVmxnet3 {
	return &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: types.VirtualEthernetCard{
		VirtualDevice: types.VirtualDevice{
			Key:           int32(firstNIC + i),
			ControllerKey: pciKey,
			UnitNumber:    types.NewInt32(int32(7 + i)),
			DeviceInfo:    &types.Description{Label: fmt.Sprintf("Network adapter %d", i+1), Summary: vmNetwork},
			Backing: &types.VirtualEthernetCardNetworkBackingInfo{
				VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: vmNetwork},
			},
		},
		AddressType: string(types.VirtualEthernetCardMacTypeGenerated),
	}}}
}

// backing describes layer l of disk d (and, through parent, the rest of
// its chain) the way vSphere does.
func (vm *LabVM) backing(d *disk, l *layer, changeID string) *types.VirtualDiskFlatVer2BackingInfo {
	ds := vm.store().ref
	b := &types.VirtualDiskFlatVer2BackingInfo{
		VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: vm.dsPath(l.descriptorName()), Datastore: &ds},
		DiskMode:                     string(types.VirtualDiskModePersistent),
		Split:                        types.NewBool(false),
		WriteThrough:                 types.NewBool(false),
		ThinProvisioned:              types.NewBool(d.thin),
		EagerlyScrub:                 types.NewBool(false),
		DigestEnabled:                types.NewBool(false),
		Uuid:                         d.uuid,
		ContentId:                    l.contentID,
		ChangeId:                     changeID,
		Sharing:                      "sharingNone",
	}
	if !l.flat {
		b.DeltaDiskFormat = string(types.VirtualDiskDeltaDiskFormatSeSparseFormat)
		b.DeltaGrainSize = grainSize / 1024
	}
	if l.parent != nil {
		b.Parent = vm.backing(d, l.parent, "")
	}
	return b
}

// devices returns the VM's device list with every lab disk described at
// the point top gives for it, as fresh VirtualDisk values.
func (vm *LabVM) devices(top func(*disk) (*layer, string)) []types.BaseVirtualDevice {
	var out []types.BaseVirtualDevice
	for _, dev := range vm.Config.Hardware.Device {
		vd, ok := dev.(*types.VirtualDisk)
		if !ok || vm.disk(vd.Key) == nil {
			out = append(out, dev)
			continue
		}
		d := vm.disk(vd.Key)
		l, changeID := top(d)
		nd := *vd
		nd.CapacityInBytes = d.capacity
		nd.CapacityInKB = d.capacity / 1024
		nd.DeviceInfo = &types.Description{Label: d.label, Summary: fmt.Sprintf("%s KB", thousands(d.capacity/1024))}
		nd.Backing = vm.backing(d, l, changeID)
		out = append(out, &nd)
	}
	return out
}

// publish pushes the lab's state (disk chains, CBT, snapshot tree, file
// layout) into the VM's and its snapshots' properties. Call with the lock held.
func (vm *LabVM) publish() {
	for _, s := range vm.snaps {
		s.ChildSnapshot = nil
		for _, c := range vm.children(s) {
			s.ChildSnapshot = append(s.ChildSnapshot, c.Self)
		}
		s.Config.Hardware.Device = vm.devices(func(d *disk) (*layer, string) { return s.tops[d.key], s.changeIDs[d.key] })
		simulator.Map.Update(s, []types.PropertyChange{
			{Name: "config.hardware.device", Val: s.Config.Hardware.Device},
			{Name: "childSnapshot", Val: s.ChildSnapshot},
		})
	}

	devices := vm.devices(func(d *disk) (*layer, string) { return d.top, d.cbt.current })
	layout, layoutEx := vm.layouts()
	changes := []types.PropertyChange{
		{Name: "config.hardware.device", Val: devices},
		{Name: "config.changeTrackingEnabled", Val: vm.cbtOn},
		{Name: "summary.config.numVirtualDisks", Val: int32(len(vm.disks))},
		{Name: "layout", Val: layout},
		{Name: "layoutEx", Val: layoutEx},
		{Name: "runtime.consolidationNeeded", Val: vm.consolidationNeeded()},
	}
	if len(vm.snaps) == 0 {
		changes = append(changes,
			types.PropertyChange{Name: "snapshot", Val: nil},
			types.PropertyChange{Name: "rootSnapshot", Val: nil})
	} else {
		var roots []types.ManagedObjectReference
		for _, r := range vm.children(nil) {
			roots = append(roots, r.Self)
		}
		changes = append(changes,
			types.PropertyChange{Name: "snapshot", Val: vm.snapshotInfo()},
			types.PropertyChange{Name: "rootSnapshot", Val: roots})
	}
	simulator.Map.Update(vm, changes)
	vm.publishGuest()
	if err := vm.writeVmx(); err != nil {
		log.Printf("lab: writing the .vmx of %s: %v", vm.Name, err)
	}
}

// layouts rebuilds layout and layoutEx from the files in the VM directory
// and the lab's disk chains (the simulator's own bookkeeping does not know
// about deltas).
func (vm *LabVM) layouts() (*types.VirtualMachineFileLayout, *types.VirtualMachineFileLayoutEx) {
	ex := &types.VirtualMachineFileLayoutEx{Timestamp: time.Now()}
	keys := map[string]int32{}
	add := func(name string) int32 {
		if k, ok := keys[name]; ok {
			return k
		}
		k := int32(len(ex.File))
		keys[name] = k
		size := fileSize(filepath.Join(vm.dir(), name))
		ex.File = append(ex.File, types.VirtualMachineFileLayoutExFileInfo{
			Key: k, Name: vm.dsPath(name), Type: fileType(name), Size: size, UniqueSize: size, Accessible: types.NewBool(true),
		})
		return k
	}
	units := func(top *layer) []types.VirtualMachineFileLayoutExDiskUnit {
		var u []types.VirtualMachineFileLayoutExDiskUnit
		for _, l := range chain(top) {
			u = append(u, types.VirtualMachineFileLayoutExDiskUnit{FileKey: []int32{add(l.descriptorName()), add(l.extentName())}})
		}
		return u
	}
	files := dirFiles(vm.dir())
	for _, name := range files {
		if t := fileType(name); t == "config" || t == "nvram" || t == "snapshotList" {
			add(name)
		}
	}

	lay := &types.VirtualMachineFileLayout{}
	if vm.Layout != nil {
		*lay = *vm.Layout
	}
	lay.Disk, lay.Snapshot = nil, nil
	for _, d := range vm.disks {
		ex.Disk = append(ex.Disk, types.VirtualMachineFileLayoutExDiskLayout{Key: d.key, Chain: units(d.top)})
		var names []string
		for l := d.top; l != nil; l = l.parent {
			names = append(names, vm.dsPath(l.descriptorName()))
		}
		lay.Disk = append(lay.Disk, types.VirtualMachineFileLayoutDiskLayout{Key: d.key, DiskFile: names})
	}
	for _, s := range vm.snaps {
		sl := types.VirtualMachineFileLayoutExSnapshotLayout{Key: s.Self, DataKey: add(s.vmsn), MemoryKey: -1}
		if s.vmem != "" {
			sl.MemoryKey = add(s.vmem)
		}
		snapFiles := []string{vm.dsPath(s.vmsn)}
		for _, d := range vm.disks {
			sl.Disk = append(sl.Disk, types.VirtualMachineFileLayoutExDiskLayout{Key: d.key, Chain: units(s.tops[d.key])})
			for _, l := range chain(s.tops[d.key]) {
				snapFiles = append(snapFiles, vm.dsPath(l.descriptorName()))
			}
		}
		ex.Snapshot = append(ex.Snapshot, sl)
		lay.Snapshot = append(lay.Snapshot, types.VirtualMachineFileLayoutSnapshotLayout{Key: s.Self, SnapshotFile: snapFiles})
	}
	for _, name := range files {
		if fileType(name) != "" {
			add(name)
		}
	}
	return lay, ex
}

func dirFiles(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// fileSize is the allocated size of extents (they are thin) and the length
// of anything else.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && fileType(path) == "diskExtent" {
		return sys.Blocks * 512
	}
	return st.Size()
}

func fileType(name string) string {
	switch {
	case strings.HasSuffix(name, "-flat.vmdk"), strings.HasSuffix(name, "-sesparse.vmdk"):
		return "diskExtent"
	case strings.HasSuffix(name, ".vmdk"):
		return "diskDescriptor"
	}
	return map[string]string{
		".vmx": "config", ".nvram": "nvram", ".vmsd": "snapshotList", ".vmsn": "snapshotData",
		".vmem": "snapshotMemory", ".log": "log",
	}[filepath.Ext(name)]
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ReconfigVMTask handles what the lab models itself (disk growth and change
// tracking) and hands the rest of the spec to the simulator.
func (vm *LabVM) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	ref := runTask(vm, vm, "reconfigVmTask", func() (types.AnyType, *taskFault) {
		return nil, vm.reconfigure(ctx, req.Spec)
	})
	return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{Returnval: ref}}
}

func (vm *LabVM) reconfigure(ctx *simulator.Context, spec types.VirtualMachineConfigSpec) *taskFault {
	type growth struct {
		d        *disk
		capacity int64
	}
	var grows []growth
	var rest []types.BaseVirtualDeviceConfigSpec
	for i, change := range spec.DeviceChange {
		dc := change.GetVirtualDeviceConfigSpec()
		vd, ok := dc.Device.(*types.VirtualDisk)
		if !ok {
			rest = append(rest, change)
			continue
		}
		if dc.Operation != types.VirtualDeviceConfigSpecOperationEdit {
			return &taskFault{&types.NotSupported{}, "lab: adding or removing virtual disks is not supported"}
		}
		d := vm.disk(vd.Key)
		if d == nil {
			return &taskFault{&types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device.key"}, DeviceIndex: int32(i)},
				fmt.Sprintf("%s has no virtual disk with key %d", vm.Name, vd.Key)}
		}
		capacity := vd.CapacityInBytes
		if kb := vd.CapacityInKB * 1024; kb > capacity {
			capacity = kb // clients often edit capacityInKB and leave the old capacityInBytes
		}
		switch {
		case capacity == d.capacity || capacity == 0:
		case capacity < d.capacity:
			return &taskFault{&types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device.capacityInKB"}, DeviceIndex: int32(i)},
				fmt.Sprintf("shrinking %s is not supported", d.label)}
		case capacity%sectorSize != 0:
			return &taskFault{&types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device.capacityInBytes"}, DeviceIndex: int32(i)},
				"the capacity must be a multiple of 512 bytes"}
		case len(vm.snaps) > 0:
			return &taskFault{&types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device.capacityInKB"}, DeviceIndex: int32(i)},
				fmt.Sprintf("%s cannot be extended while the virtual machine has snapshots", d.label)}
		default:
			grows = append(grows, growth{d, capacity})
		}
	}

	if len(spec.ExtraConfig) > 0 {
		vm.setExtraConfig(spec.ExtraConfig)
		spec.ExtraConfig = nil
	}
	cbt := spec.ChangeTrackingEnabled
	spec.ChangeTrackingEnabled = nil
	spec.DeviceChange = rest
	if !reflect.DeepEqual(spec, types.VirtualMachineConfigSpec{}) {
		res := vm.VirtualMachine.ReconfigVMTask(ctx, &types.ReconfigVM_Task{This: vm.Self, Spec: spec})
		task := simulator.Map.Get(res.(*methods.ReconfigVM_TaskBody).Res.Returnval).(*simulator.Task)
		if e := task.Info.Error; e != nil {
			return &taskFault{e.Fault, e.LocalizedMessage}
		}
	}

	for _, g := range grows {
		if err := g.d.grow(g.capacity); err != nil {
			return &taskFault{&types.FileFault{File: vm.dsPath(g.d.top.extentName())}, err.Error()}
		}
		g.d.startTracking(vm.tracking(), g.d.top) // as on ESXi, extending a disk resets its CBT
	}
	if cbt != nil && *cbt != vm.cbtOn {
		vm.cbtOn = *cbt
		vm.cbtPending = vm.cbtOn && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
		for _, d := range vm.disks {
			d.startTracking(vm.tracking(), d.top)
		}
	}
	vm.publish()
	return nil
}

// tracking says whether changes are being tracked now (on, and not waiting for a stun).
func (vm *LabVM) tracking() bool { return vm.cbtOn && !vm.cbtPending }

// stunned is a stun-unstun cycle: CBT turned on while the VM ran takes effect,
// on each disk's layer running at the stun (running), and every disk gets a
// new current changeId.
func (vm *LabVM) stunned(running func(*disk) *layer) {
	if vm.cbtPending {
		vm.cbtPending = false
		for _, d := range vm.disks {
			d.startTracking(true, running(d))
		}
		return
	}
	for _, d := range vm.disks {
		d.cbt.current = d.cbt.issue()
	}
}

// PowerOnVMTask is the simulator's; powering on is a stun-unstun cycle, and
// starts the guest's Tools (tools.go).
func (vm *LabVM) PowerOnVMTask(ctx *simulator.Context, req *types.PowerOnVM_Task) soap.HasFault {
	was := vm.Runtime.PowerState
	res := vm.VirtualMachine.PowerOnVMTask(ctx, req)
	vm.publishGuest()
	if was != types.VirtualMachinePowerStatePoweredOn && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		if err := vm.ensureNvram(); err != nil {
			log.Printf("lab: writing the nvram of %s: %v", vm.Name, err)
		}
		vm.stunned(func(d *disk) *layer { return d.top })
		vm.publish()
	}
	return res
}

// RefreshStorageInfo recomputes layoutEx the lab's way.
func (vm *LabVM) RefreshStorageInfo(ctx *simulator.Context, req *types.RefreshStorageInfo) soap.HasFault {
	vm.publish()
	return &methods.RefreshStorageInfoBody{Res: new(types.RefreshStorageInfoResponse)}
}

// DestroyTask removes a powered-off VM: the simulator unregisters it and
// deletes its directory; the lab closes and removes its disk files (every
// layer, snapshots included) and forgets it.
func (vm *LabVM) DestroyTask(ctx *simulator.Context, req *types.Destroy_Task) soap.HasFault {
	ref := runTask(vm, vm, "destroyTask", func() (types.AnyType, *taskFault) {
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			return nil, &taskFault{&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOff, ExistingState: vm.Runtime.PowerState},
				"The attempted operation cannot be performed in the current state (Powered on)."}
		}
		for _, d := range vm.disks {
			for l := range vm.layers(d) {
				l.destroy()
			}
		}
		for _, s := range vm.snaps {
			simulator.Map.Remove(s.Self)
			vm.lab.stats.snapshotRemoved(s.name)
		}
		vm.disks, vm.snaps, vm.current = nil, nil, nil
		res := vm.VirtualMachine.DestroyTask(ctx, req).(*methods.Destroy_TaskBody)
		task := simulator.Map.Get(res.Res.Returnval).(*simulator.Task)
		if e := task.Info.Error; e != nil {
			return nil, &taskFault{e.Fault, e.LocalizedMessage}
		}
		_ = os.RemoveAll(vm.dir())
		vm.lab.removeVM(vm)
		return nil, nil
	})
	return &methods.Destroy_TaskBody{Res: &types.Destroy_TaskResponse{Returnval: ref}}
}

// taskFault is a task's error with the message clients show.
type taskFault struct {
	fault types.BaseMethodFault
	msg   string
}

// runTask runs fn as a vSphere task of obj (on vm), like simulator.Task.Run
// but with a real localizedMessage (the simulator puts the Go type name
// there) and the VM as entity, as vCenter reports it.
// The task is done when the method returns; clients wait on it as usual.
func runTask(obj mo.Reference, vm *LabVM, name string, fn func() (types.AnyType, *taskFault)) types.ManagedObjectReference {
	return runEntityTask(obj, vm.Self, vm.Name, name, func() (types.AnyType, *taskFault) {
		if f := vm.lab.leaseBlock(vm); f != nil { // an export lease holds the VM (nfc.go)
			return nil, f
		}
		return fn()
	})
}

// runEntityTask is runTask for any entity (CreateVM_Task's is the folder).
func runEntityTask(obj mo.Reference, entity types.ManagedObjectReference, entityName, name string, fn func() (types.AnyType, *taskFault)) types.ManagedObjectReference {
	task := beginTask(obj, entity, entityName, name)
	res, f := fn()
	finishTask(task, res, f)
	return task.Self
}

// beginTask creates a running task of obj on entity.
func beginTask(obj mo.Reference, entity types.ManagedObjectReference, entityName, name string) *simulator.Task {
	task := simulator.CreateTask(obj, name, nil)
	task.Info.Reason = &types.TaskReasonUser{UserName: labUser}
	task.Info.Entity = &entity
	task.Info.EntityName = entityName
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.startTime", Val: time.Now()},
		{Name: "info.state", Val: types.TaskInfoStateRunning},
	})
	return task
}

// finishTask ends a task with its result or fault.
func finishTask(task *simulator.Task, res types.AnyType, f *taskFault) {
	state := types.TaskInfoStateSuccess
	var fault interface{}
	if f != nil {
		state = types.TaskInfoStateError
		fault = types.LocalizedMethodFault{Fault: f.fault, LocalizedMessage: f.msg}
	}
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.completeTime", Val: time.Now()},
		{Name: "info.state", Val: state},
		{Name: "info.result", Val: res},
		{Name: "info.error", Val: fault},
	})
}

// setExtraConfig applies advanced settings as vSphere does (the simulator only appends):
// a key is set or replaced, and an empty value removes it.
func (vm *LabVM) setExtraConfig(opts []types.BaseOptionValue) {
	for _, o := range opts {
		v := o.GetOptionValue()
		var kept []types.BaseOptionValue
		for _, e := range vm.Config.ExtraConfig {
			if e.GetOptionValue().Key != v.Key {
				kept = append(kept, e)
			}
		}
		if s, ok := v.Value.(string); !ok || s != "" {
			kept = append(kept, o)
		}
		vm.Config.ExtraConfig = kept
	}
}
