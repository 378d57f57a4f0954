package main

// Storage vMotion and method disabling. RelocateVM_Task with a datastore
// moves a lab VM's files — every disk layer, snapshots' frozen layers
// included — to the other datastore, as storage vMotion does, and the disks'
// backing fileName changes. AuthorizationManager.DisableMethods /
// EnableMethods keep a per-VM list of disabled methods with the source that
// disabled each; a disabled method answers the MethodDisabled fault and the
// VM's disabledMethod lists it, as vCenter does.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// secondDatastore is where a relocation can move a VM.
const secondDatastore = "LocalDS_1"

// labStore is a datastore of the lab: its name, host directory and moref.
type labStore struct {
	name, dir string
	ref       types.ManagedObjectReference
}

// store is the datastore the VM's files are on (nil: the primary).
func (vm *LabVM) store() labStore {
	if vm.moved != nil {
		return *vm.moved
	}
	return labStore{vm.lab.dsName, vm.lab.dsDir, vm.lab.dsRef}
}

// storeNamed finds a datastore of the lab by name.
func (lab *Lab) storeNamed(name string) (labStore, bool) {
	switch {
	case name == lab.dsName:
		return labStore{lab.dsName, lab.dsDir, lab.dsRef}, true
	case lab.second != nil && name == lab.second.name:
		return *lab.second, true
	}
	return labStore{}, false
}

// storeByRef finds a datastore of the lab by moref.
func (lab *Lab) storeByRef(ref types.ManagedObjectReference) (labStore, bool) {
	if ref == lab.dsRef {
		return lab.storeNamed(lab.dsName)
	}
	if lab.second != nil && ref == lab.second.ref {
		return *lab.second, true
	}
	return labStore{}, false
}

// Methods vmbkp (or anyone) may disable on a VM that the lab honours.
var disablableMethods = map[string]bool{"RelocateVM_Task": true, "MigrateVM_Task": true}

// methodDisabled answers a call of a disabled method the way vCenter does:
// the SOAP fault MethodDisabled, whose source names who disabled it.
func (vm *LabVM) methodDisabled(method string) *soap.Fault {
	sources := vm.disabled[method]
	if len(sources) == 0 {
		return nil
	}
	var names []string
	for s := range sources {
		names = append(names, s)
	}
	sort.Strings(names)
	return simulator.Fault(fmt.Sprintf("The method is disabled by '%s'", names[0]), &types.MethodDisabled{Source: names[0]})
}

// publishDisabled sets the VM's disabledMethod. Call with the lock held.
func (vm *LabVM) publishDisabled() {
	var list []string
	for m, sources := range vm.disabled {
		if len(sources) > 0 {
			list = append(list, m)
		}
	}
	sort.Strings(list)
	vm.DisabledMethod = list
	simulator.Map.Update(vm, []types.PropertyChange{{Name: "disabledMethod", Val: list}})
}

// RelocateVMTask: a datastore move of the whole VM (storage vMotion); host,
// pool and folder changes are the simulator's. Refused while disabled.
func (vm *LabVM) RelocateVMTask(ctx *simulator.Context, req *types.RelocateVM_Task) soap.HasFault {
	if f := vm.methodDisabled("RelocateVM_Task"); f != nil {
		return &methods.RelocateVM_TaskBody{Fault_: f}
	}
	ref := runTask(vm, vm, "relocateVm", func() (types.AnyType, *taskFault) {
		for _, dl := range req.Spec.Disk {
			if dl.Datastore != (types.ManagedObjectReference{}) && (req.Spec.Datastore == nil || dl.Datastore != *req.Spec.Datastore) {
				return nil, &taskFault{&types.NotSupported{}, "lab: disks on a datastore of their own are not supported"}
			}
		}
		if req.Spec.Datastore != nil {
			to, ok := vm.lab.storeByRef(*req.Spec.Datastore)
			if !ok {
				return nil, &taskFault{&types.InvalidArgument{InvalidProperty: "spec.datastore"}, fmt.Sprintf("no datastore %s", req.Spec.Datastore.Value)}
			}
			if to.name != vm.store().name {
				if err := vm.moveTo(to); err != nil {
					return nil, &taskFault{&types.FileFault{File: vm.dsPath("")}, fmt.Sprintf("lab: moving the files of %s failed: %s", vm.Name, err)}
				}
			}
		}
		rest := req.Spec
		rest.Datastore, rest.Disk = nil, nil
		if !reflect.DeepEqual(rest, types.VirtualMachineRelocateSpec{}) {
			res := vm.VirtualMachine.RelocateVMTask(ctx, &types.RelocateVM_Task{This: vm.Self, Spec: rest, Priority: req.Priority})
			task := simulator.Map.Get(res.(*methods.RelocateVM_TaskBody).Res.Returnval).(*simulator.Task)
			if e := task.Info.Error; e != nil {
				return nil, &taskFault{e.Fault, e.LocalizedMessage}
			}
		}
		return nil, nil
	})
	return &methods.RelocateVM_TaskBody{Res: &types.RelocateVM_TaskResponse{Returnval: ref}}
}

// MigrateVMTask (a host move, vMotion): the lab has one host, so the VM
// stays where it is and the task succeeds; refused while disabled.
func (vm *LabVM) MigrateVMTask(ctx *simulator.Context, req *types.MigrateVM_Task) soap.HasFault {
	if f := vm.methodDisabled("MigrateVM_Task"); f != nil {
		return &methods.MigrateVM_TaskBody{Fault_: f}
	}
	ref := runTask(vm, vm, "migrateVm", func() (types.AnyType, *taskFault) { return nil, nil })
	return &methods.MigrateVM_TaskBody{Res: &types.MigrateVM_TaskResponse{Returnval: ref}}
}

// moveTo moves the VM's directory to another datastore and points every
// layer, the VM's files and its datastore at the new place. Open files (a
// /folder read in flight) keep reading the moved file; new reads of the old
// path find nothing, as after storage vMotion deleted the source.
func (vm *LabVM) moveTo(to labStore) error {
	from := vm.store()
	newDir := filepath.Join(to.dir, vm.dirName)
	if _, err := os.Stat(newDir); err == nil {
		return fmt.Errorf("%s already exists on %s", vm.dirName, to.name)
	}
	if err := os.Rename(vm.dir(), newDir); err != nil {
		return err
	}
	s := to
	vm.moved = &s
	for _, d := range vm.disks {
		d.dir = newDir
		for l := range vm.layers(d) {
			l.dir = newDir
		}
	}
	for l := range vm.leftovers {
		l.dir = newDir
	}
	swap := func(p string) string {
		return strings.Replace(p, "["+from.name+"] ", "["+to.name+"] ", 1)
	}
	f := vm.Config.Files
	f.VmPathName, f.SnapshotDirectory, f.SuspendDirectory, f.LogDirectory = swap(f.VmPathName), swap(f.SnapshotDirectory), swap(f.SuspendDirectory), swap(f.LogDirectory)
	vm.Summary.Config.VmPathName = f.VmPathName
	vm.Datastore = []types.ManagedObjectReference{to.ref}
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "config.files", Val: f},
		{Name: "summary.config.vmPathName", Val: f.VmPathName},
		{Name: "datastore", Val: vm.Datastore},
	})
	vm.publish()
	return nil
}

// The internal vSphere API's AuthorizationManager.DisableMethods and
// EnableMethods (govmomi's object/authorization_manager_internal.go has the
// same request shapes); the simulator does not know them.
type disabledMethodRequest struct {
	Method   string `xml:"method"`
	ReasonID string `xml:"reasonId,omitempty"`
}

type disableMethodsRequest struct {
	This         types.ManagedObjectReference   `xml:"_this"`
	Entity       []types.ManagedObjectReference `xml:"entity"`
	Method       []disabledMethodRequest        `xml:"method"`
	SourceID     string                         `xml:"sourceId"`
	SessionScope bool                           `xml:"sessionScope,omitempty"`
}

type enableMethodsRequest struct {
	This     types.ManagedObjectReference   `xml:"_this"`
	Entity   []types.ManagedObjectReference `xml:"entity"`
	Method   []string                       `xml:"method"`
	SourceID string                         `xml:"sourceId"`
}

// The simulator names a response element after the type of Res.
type DisableMethodsResponse struct{}
type EnableMethodsResponse struct{}

type disableMethodsBody struct {
	Res    *DisableMethodsResponse `xml:"urn:vim25 DisableMethodsResponse,omitempty"`
	Fault_ *soap.Fault             `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *disableMethodsBody) Fault() *soap.Fault { return b.Fault_ }

type enableMethodsBody struct {
	Res    *EnableMethodsResponse `xml:"urn:vim25 EnableMethodsResponse,omitempty"`
	Fault_ *soap.Fault            `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *enableMethodsBody) Fault() *soap.Fault { return b.Fault_ }

func init() {
	types.Add("DisableMethods", reflect.TypeOf((*disableMethodsRequest)(nil)).Elem())
	types.Add("EnableMethods", reflect.TypeOf((*enableMethodsRequest)(nil)).Elem())
}

// LabAuthz is the simulator's AuthorizationManager with DisableMethods and
// EnableMethods added (embedded by value, like LabVM).
type LabAuthz struct {
	simulator.AuthorizationManager
	lab *Lab
}

// entities resolves the request's entities to lab VMs; a moref that is not
// one faults ManagedObjectNotFound (other entity types are not modelled).
func (a *LabAuthz) entities(refs []types.ManagedObjectReference) ([]*LabVM, *soap.Fault) {
	var out []*LabVM
	for _, ref := range refs {
		var found *LabVM
		for _, vm := range a.lab.allVMs() {
			if vm.Self == ref {
				found = vm
			}
		}
		if found == nil {
			return nil, simulator.Fault(fmt.Sprintf("The object '%s' has already been deleted or has not been completely created", ref), &types.ManagedObjectNotFound{Obj: ref})
		}
		out = append(out, found)
	}
	return out, nil
}

func (a *LabAuthz) DisableMethods(ctx *simulator.Context, req *disableMethodsRequest) soap.HasFault {
	vms, f := a.entities(req.Entity)
	if f == nil && req.SourceID == "" {
		f = simulator.Fault("A specified parameter was not correct: sourceId", &types.InvalidArgument{InvalidProperty: "sourceId"})
	}
	if f != nil {
		return &disableMethodsBody{Fault_: f}
	}
	for _, vm := range vms {
		if _, ok := a.lab.faults.take(faultDisableMethods, vm.Name); ok {
			return &disableMethodsBody{Fault_: simulator.Fault("Permission to perform this operation was denied.",
				&types.NoPermission{Object: vm.Self, PrivilegeId: "Global.DisableMethods"})}
		}
	}
	for _, vm := range vms {
		vm.Lock()
		if vm.disabled == nil {
			vm.disabled = map[string]map[string]bool{}
		}
		for _, m := range req.Method {
			if vm.disabled[m.Method] == nil {
				vm.disabled[m.Method] = map[string]bool{}
			}
			vm.disabled[m.Method][req.SourceID] = true
		}
		vm.publishDisabled()
		vm.Unlock()
	}
	return &disableMethodsBody{Res: &DisableMethodsResponse{}}
}

// EnableMethods takes back what sourceId disabled; a method another source
// disabled too stays disabled.
func (a *LabAuthz) EnableMethods(ctx *simulator.Context, req *enableMethodsRequest) soap.HasFault {
	vms, f := a.entities(req.Entity)
	if f != nil {
		return &enableMethodsBody{Fault_: f}
	}
	for _, vm := range vms {
		vm.Lock()
		for _, m := range req.Method {
			delete(vm.disabled[m], req.SourceID)
		}
		vm.publishDisabled()
		vm.Unlock()
	}
	return &enableMethodsBody{Res: &EnableMethodsResponse{}}
}

// installAuthz swaps the lab's AuthorizationManager in for the simulator's.
func (lab *Lab) installAuthz() {
	si := simulator.Map.Get(types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"}).(*simulator.ServiceInstance)
	old := simulator.Map.Get(*si.Content.AuthorizationManager).(*simulator.AuthorizationManager)
	simulator.Map.Put(&LabAuthz{AuthorizationManager: *old, lab: lab})
}

// addSecondDatastore makes LocalDS_1 on a sibling of the primary's directory
// (the same file system, so a move is a rename), empty.
func (lab *Lab) addSecondDatastore(ctx context.Context, dss *object.HostDatastoreSystem) error {
	dir := lab.dsDir + "-" + secondDatastore
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		return fmt.Errorf("datastore %s: %s must be an empty directory", secondDatastore, dir)
	}
	ds, err := dss.CreateLocalDatastore(ctx, secondDatastore, dir)
	if err != nil {
		return fmt.Errorf("datastore %s: %w", secondDatastore, err)
	}
	lab.second = &labStore{secondDatastore, dir, ds.Reference()}
	return nil
}
