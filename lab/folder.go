package main

// Creating VMs. CreateVM_Task on a VM folder makes lab VMs: the simulator
// creates the VM (inventory, .vmx/.nvram/.log, empty placeholder disk
// files), then every new disk gets real lab files in ESXi's layout
// (NAME.vmdk descriptor + sparse NAME-flat.vmdk of the disk's capacity) and
// the VM is swapped for a LabVM, so /folder, snapshots, CBT and the control
// endpoint work on it as on the VMs the lab starts with.
//
// Folders stay the simulator's own (its inventory searches want that
// type): the SDK gate sends each CreateVM_Task to the folder's vmCreator, a
// hidden object that does the lab's part and calls the folder.

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// vmCreator handles CreateVM_Task for one VM folder. It is registered under
// a moref of its own ("group-4-lab") and is no child of anything, so no
// inventory walk finds it.
type vmCreator struct {
	mo.Folder

	lab    *Lab
	folder types.ManagedObjectReference
}

var creators sync.Mutex

// routeCreateVM rewrites a CreateVM_Task request on folder to go to that
// folder's vmCreator, making the creator on first use.
func (lab *Lab) routeCreateVM(body []byte, folder string) []byte {
	ref := types.ManagedObjectReference{Type: "Folder", Value: folder}
	if _, ok := simulator.Map.Get(ref).(*simulator.Folder); !ok {
		return body // the simulator answers with its fault
	}
	proxy := types.ManagedObjectReference{Type: "Folder", Value: folder + "-lab"}
	creators.Lock()
	if simulator.Map.Get(proxy) == nil {
		c := &vmCreator{lab: lab, folder: ref}
		c.Self = proxy
		simulator.Map.Put(c)
	}
	creators.Unlock()
	re := regexp.MustCompile(`(<_this\b[^>]*>)\s*` + regexp.QuoteMeta(folder) + `\s*(</_this>)`)
	loc := re.FindSubmatchIndex(body)
	if loc == nil {
		return body
	}
	out := append([]byte{}, body[:loc[3]]...) // through <_this …>
	out = append(out, proxy.Value...)
	return append(out, body[loc[4]:]...) // from </_this>
}

func (c *vmCreator) CreateVMTask(ctx *simulator.Context, req *types.CreateVM_Task) soap.HasFault {
	f := simulator.Map.Get(c.folder).(*simulator.Folder)
	req.This = c.folder
	ref := runEntityTask(f, f.Self, f.Name, "createVmTask", func() (types.AnyType, *taskFault) {
		return c.lab.createVMFromSpec(ctx, f, req)
	})
	return &methods.CreateVM_TaskBody{Res: &types.CreateVM_TaskResponse{Returnval: ref}}
}

// createVMFromSpec checks what the simulator would not (or would panic on),
// gives new devices vCenter's keys, lets the simulator create the VM and
// turns it into a LabVM.
func (lab *Lab) createVMFromSpec(ctx *simulator.Context, f *simulator.Folder, req *types.CreateVM_Task) (types.AnyType, *taskFault) {
	spec := &req.Config
	var dup *taskFault
	simulator.Map.WithLock(f, func() {
		for _, child := range f.ChildEntity {
			if e, ok := simulator.Map.Get(child).(mo.Entity); ok && spec.Name != "" && child.Type == "VirtualMachine" && e.Entity().Name == spec.Name {
				dup = &taskFault{&types.DuplicateName{Name: spec.Name, Object: child}, fmt.Sprintf("The name '%s' already exists.", spec.Name)}
			}
		}
	})
	if dup != nil {
		return nil, dup
	}
	if spec.Files != nil {
		var p object.DatastorePath
		if !p.FromString(spec.Files.VmPathName) || p.Datastore != lab.dsName {
			return nil, &taskFault{&types.InvalidDatastorePath{DatastorePath: spec.Files.VmPathName},
				fmt.Sprintf("Invalid datastore path '%s'.", spec.Files.VmPathName)}
		}
	}
	if tf := lab.checkDevices(f, spec); tf != nil {
		return nil, tf
	}
	if _, ok := lab.faults.takeIf(faultDatastoreFull, spec.Name, func(r faultRule) bool { return r.During == duringCreate }); ok {
		return nil, &taskFault{&types.NoDiskSpace{FileFault: types.FileFault{File: spec.Files.VmPathName}, Datastore: lab.dsName},
			fmt.Sprintf("Insufficient disk space on datastore '%s'.", lab.dsName)}
	}
	assignKeys(spec.DeviceChange)
	if spec.InstanceUuid == "" {
		// vCenter gives every new VM a unique instance UUID; the simulator derives one from
		// the .vmx path, which a VM made again under the same name would share.
		spec.InstanceUuid = randomUUID()
	}

	res := f.CreateVMTask(ctx, req).(*methods.CreateVM_TaskBody)
	task := simulator.Map.Get(res.Res.Returnval).(*simulator.Task)
	if e := task.Info.Error; e != nil {
		return nil, &taskFault{e.Fault, e.LocalizedMessage}
	}
	ref := task.Info.Result.(types.ManagedObjectReference)
	if _, err := lab.adoptVM(ref, spec); err != nil {
		return nil, &taskFault{&types.FileFault{File: spec.Files.VmPathName}, fmt.Sprintf("lab: creating the disks of %s failed: %s", spec.Name, err)}
	}
	return ref, nil
}

// checkDevices refuses disks the lab cannot make and networks that do not
// exist (the simulator would panic on those).
func (lab *Lab) checkDevices(f *simulator.Folder, spec *types.VirtualMachineConfigSpec) *taskFault {
	dc := datacenterOf(f)
	for i, change := range spec.DeviceChange {
		dc := dc
		dspec := change.GetVirtualDeviceConfigSpec()
		invalid := func(msg string) *taskFault {
			return &taskFault{&types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: "deviceChange"}, DeviceIndex: int32(i)}, msg}
		}
		if dspec.Operation != types.VirtualDeviceConfigSpecOperationAdd {
			return invalid(fmt.Sprintf("Invalid configuration for device '%d': a new VM's devices are added.", i))
		}
		switch dev := dspec.Device.(type) {
		case *types.VirtualDisk:
			if dspec.FileOperation != types.VirtualDeviceConfigSpecFileOperationCreate {
				return &taskFault{&types.NotSupported{}, "lab: CreateVM_Task only creates new disks (fileOperation create)"}
			}
			b, ok := dev.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !ok {
				return &taskFault{&types.NotSupported{}, fmt.Sprintf("lab: disk backing %T is not supported (only flat ver2)", dev.Backing)}
			}
			var p object.DatastorePath
			if !p.FromString(b.FileName) || p.Datastore != lab.dsName {
				return &taskFault{&types.InvalidDatastorePath{DatastorePath: b.FileName}, fmt.Sprintf("Invalid datastore path '%s'.", b.FileName)}
			}
			capacity := dev.CapacityInBytes
			if capacity == 0 {
				capacity = dev.CapacityInKB * 1024
			}
			if capacity <= 0 || capacity%1024 != 0 {
				return invalid(fmt.Sprintf("Invalid configuration for device '%d': the capacity must be a positive multiple of 1 KB.", i))
			}
			if dev.UnitNumber == nil {
				return invalid(fmt.Sprintf("Invalid configuration for device '%d': a new disk needs a unit number.", i))
			}
		case types.BaseVirtualEthernetCard:
			switch b := dev.GetVirtualEthernetCard().Backing.(type) {
			case *types.VirtualEthernetCardNetworkBackingInfo:
				if dc == nil || simulator.Map.FindByName(b.DeviceName, dc.Network) == nil {
					return &taskFault{&types.InvalidDeviceBacking{InvalidDeviceSpec: types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: "deviceChange"}, DeviceIndex: int32(i)}},
						fmt.Sprintf("Invalid configuration for device '%d': network '%s' does not exist.", i, b.DeviceName)}
				}
			case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
			default:
				return &taskFault{&types.NotSupported{}, fmt.Sprintf("lab: network backing %T is not supported", b)}
			}
		}
	}
	return nil
}

func datacenterOf(f *simulator.Folder) *mo.Datacenter {
	var cur mo.Reference = f
	for cur != nil {
		e, ok := cur.(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		parent := simulator.Map.Get(*e.Entity().Parent)
		if dc, ok := parent.(*simulator.Datacenter); ok {
			return &dc.Datacenter
		}
		cur = parent
	}
	return nil
}

// assignKeys gives new devices (key <= 0) the keys vCenter gives them:
// SCSI controllers 1000+bus, SATA 15000+bus, NVMe 31000+bus; disks by
// controller and unit (2000+16×bus+unit on SCSI, 16000+30×bus+unit on SATA,
// 32000+16×bus+unit on NVMe, 3000+2×bus+unit on IDE); NICs 4000, 4001, …
// References to a controller's temporary key follow it.
func assignKeys(changes []types.BaseVirtualDeviceConfigSpec) {
	used := map[int32]bool{}
	renamed := map[int32]int32{}
	bus := map[int32]int32{}   // controller key (temporary or final) → bus number
	kind := map[int32]string{} // controller key → scsi, sata, nvme, ide
	for _, c := range changes {
		d := c.GetVirtualDeviceConfigSpec().Device.GetVirtualDevice()
		if d.Key > 0 {
			used[d.Key] = true
		}
	}
	pick := func(want int32) int32 {
		for used[want] {
			want++
		}
		used[want] = true
		return want
	}
	controllerKind := func(dev types.BaseVirtualDevice) string {
		switch dev.(type) {
		case types.BaseVirtualSCSIController:
			return "scsi"
		case types.BaseVirtualSATAController:
			return "sata"
		case *types.VirtualNVMEController:
			return "nvme"
		case *types.VirtualIDEController:
			return "ide"
		}
		return ""
	}
	base := map[string]int32{"scsi": 1000, "sata": 15000, "nvme": 31000, "ide": 200}
	for _, c := range changes {
		dev := c.GetVirtualDeviceConfigSpec().Device
		k := controllerKind(dev)
		if k == "" {
			continue
		}
		d := dev.GetVirtualDevice()
		b := dev.(types.BaseVirtualController).GetVirtualController().BusNumber
		old := d.Key
		if d.Key <= 0 {
			d.Key = pick(base[k] + b)
			renamed[old] = d.Key
		}
		bus[d.Key], kind[d.Key] = b, k
	}
	// The default IDE controllers of every new VM.
	for b := int32(0); b < 2; b++ {
		if _, ok := kind[200+b]; !ok {
			bus[200+b], kind[200+b] = b, "ide"
		}
	}
	nic := int32(4000)
	for _, c := range changes {
		d := c.GetVirtualDeviceConfigSpec().Device.GetVirtualDevice()
		if to, ok := renamed[d.ControllerKey]; ok {
			d.ControllerKey = to
		}
		if d.Key > 0 {
			continue
		}
		switch c.GetVirtualDeviceConfigSpec().Device.(type) {
		case *types.VirtualDisk:
			unit := int32(0)
			if d.UnitNumber != nil {
				unit = *d.UnitNumber
			}
			b := bus[d.ControllerKey]
			switch kind[d.ControllerKey] {
			case "sata":
				d.Key = pick(16000 + 30*b + unit)
			case "nvme":
				d.Key = pick(32000 + 16*b + unit)
			case "ide":
				d.Key = pick(3000 + 2*b + unit)
			default:
				d.Key = pick(2000 + 16*b + unit)
			}
		case types.BaseVirtualEthernetCard:
			d.Key = pick(nic)
			nic = d.Key + 1
		}
	}
}

// adoptVM turns a VM the simulator just created into a LabVM whose disks
// are lab files, before the task that created it completes.
func (lab *Lab) adoptVM(ref types.ManagedObjectReference, spec *types.VirtualMachineConfigSpec) (*LabVM, error) {
	sim := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	vm := &LabVM{VirtualMachine: *sim, lab: lab}
	var vmx object.DatastorePath
	vmx.FromString(vm.Config.Files.VmPathName)
	vm.dirName = path.Dir(vmx.Path)

	n := 0
	for _, dev := range vm.Config.Hardware.Device {
		vd, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		b := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		var p object.DatastorePath
		p.FromString(b.FileName)
		capacity := vd.CapacityInBytes
		if capacity == 0 {
			capacity = vd.CapacityInKB * 1024
		}
		n++
		d, err := newFlatDisk(filepath.Join(lab.dsDir, filepath.FromSlash(path.Dir(p.Path))), strings.TrimSuffix(path.Base(p.Path), ".vmdk"),
			vd.Key, *vd.UnitNumber, fmt.Sprintf("Hard disk %d", n), capacity, b.ThinProvisioned != nil && *b.ThinProvisioned, true)
		if err != nil {
			for _, o := range vm.disks {
				o.top.destroy()
			}
			return nil, err
		}
		vm.disks = append(vm.disks, d)
	}
	// Controllers list the devices on them, as vCenter reports it.
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for _, dev := range devices {
		ctl, ok := dev.(types.BaseVirtualController)
		if !ok {
			continue
		}
		c := ctl.GetVirtualController()
		c.Device = nil
		for _, o := range devices {
			if o.GetVirtualDevice().ControllerKey == c.Key {
				c.Device = append(c.Device, o.GetVirtualDevice().Key)
			}
		}
	}
	vm.cbtOn = spec.ChangeTrackingEnabled != nil && *spec.ChangeTrackingEnabled
	for _, d := range vm.disks {
		d.startTracking(vm.cbtOn, d.top) // a new VM is powered off: no stun needed
	}
	vm.Capability.ChangeTrackingSupported = types.NewBool(true)
	vm.Config.ChangeTrackingEnabled = types.NewBool(vm.cbtOn)
	simulator.Map.Put(vm)
	lab.addVM(vm)
	vm.Lock()
	vm.publish()
	vm.Unlock()
	return vm, nil
}
