package main

// Snapshots that freeze disks. Creating one freezes each disk's running
// layer and puts a delta on top; removing one consolidates: the layer above
// its frozen point is merged down into it, so every other view (the guest's
// and the remaining snapshots') stays byte for byte what it was.
//
// The lab keeps snapshots a linear chain (no revert, so no branches):
// snapshot i froze layer i of each disk, the running layer is the last one.

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// LabSnapshot is a VirtualMachineSnapshot managed object (first field, for
// the PropertyCollector) plus what the lab needs to serve its view.
type LabSnapshot struct {
	mo.VirtualMachineSnapshot

	vm          *LabVM
	name        string
	description string
	id          int32
	created     time.Time
	state       types.VirtualMachinePowerState
	quiesced    bool
	tops        map[int32]*layer // frozen layer per disk key
	changeIDs   map[int32]string // changeId per disk key at snapshot time
	vmsn, vmem  string           // file names in the VM directory
}

// Lock and Unlock share the VM's lock (see LabVM.Lock).
func (s *LabSnapshot) Lock()   { s.vm.Lock() }
func (s *LabSnapshot) Unlock() { s.vm.Unlock() }

func (vm *LabVM) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	ref := runTask(vm, vm, "createSnapshotTask", func() (types.AnyType, *taskFault) {
		if rule, ok := vm.lab.faults.take(faultCreateSnapshot, vm.Name); ok {
			if rule.Leave {
				_, _ = vm.createSnapshot(req) // like a task that fails after the snapshot was taken
			}
			return nil, &taskFault{&types.GenericVmConfigFault{Reason: injected("CreateSnapshot_Task")}, injected("CreateSnapshot_Task")}
		}
		// Only a quiesce that would really happen can fail; vSphere rolls the snapshot back.
		if req.Quiesce && vm.toolsRunNow() {
			if _, ok := vm.lab.faults.take(faultQuiesce, vm.Name); ok {
				return nil, quiesceFault()
			}
		}
		s, err := vm.createSnapshot(req)
		if err != nil {
			return nil, &taskFault{&types.FileFault{File: vm.dsPath("")}, fmt.Sprintf("An error occurred while taking a snapshot: %s", err)}
		}
		return s.Self, nil
	})
	return &methods.CreateSnapshot_TaskBody{Res: &types.CreateSnapshot_TaskResponse{Returnval: ref}}
}

func (vm *LabVM) createSnapshot(req *types.CreateSnapshot_Task) (*LabSnapshot, error) {
	vm.sid++
	s := &LabSnapshot{
		vm:          vm,
		name:        req.Name,
		description: req.Description,
		id:          vm.sid,
		created:     time.Now(),
		state:       vm.Runtime.PowerState,
		quiesced:    req.Quiesce && vm.toolsRunNow(), // ignored without Tools or power (tools.go)
		tops:        map[int32]*layer{},
		changeIDs:   map[int32]string{},
		vmsn:        fmt.Sprintf("%s-Snapshot%d.vmsn", vm.Name, vm.sid),
	}
	if req.Memory && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		s.vmem = fmt.Sprintf("%s-Snapshot%d.vmem", vm.Name, vm.sid)
	}

	// Freeze every disk, or none.
	var pushed []*disk
	for _, d := range vm.disks {
		frozen := d.top
		if _, err := d.pushDelta(); err != nil {
			for _, p := range pushed {
				delta := p.top
				p.top = delta.parent
				delta.destroy()
			}
			return nil, err
		}
		pushed = append(pushed, d)
		s.tops[d.key] = frozen
		s.changeIDs[d.key] = d.cbt.issue()
		d.cbt.current = s.changeIDs[d.key] // the stun hands out a new changeId
	}
	if vm.cbtPending {
		// CBT takes effect at this stun, after the snapshot's point: the
		// snapshot's disks carry no changeId, the running ones do.
		vm.stunned(func(d *disk) *layer { return s.tops[d.key] })
	}
	for _, f := range []string{s.vmsn, s.vmem} {
		if f != "" {
			_ = os.WriteFile(filepath.Join(vm.dir(), f), []byte(fmt.Sprintf("vmbkp lab snapshot %q\n", s.name)), 0o600)
		}
	}

	s.Self.Type = "VirtualMachineSnapshot" // the registry names it snapshot-N
	s.Vm = vm.Self
	s.Config = *vm.Config
	simulator.Map.Put(s)
	vm.snaps = append(vm.snaps, s)
	vm.lab.stats.snapshotAdded(s.name)
	vm.publish()
	return s, nil
}

func (vm *LabVM) snapshotInfo() *types.VirtualMachineSnapshotInfo {
	var children []types.VirtualMachineSnapshotTree
	for i := len(vm.snaps) - 1; i >= 0; i-- {
		s := vm.snaps[i]
		children = []types.VirtualMachineSnapshotTree{{
			Snapshot:          s.Self,
			Vm:                vm.Self,
			Name:              s.name,
			Description:       s.description,
			Id:                s.id,
			CreateTime:        s.created,
			State:             s.state,
			Quiesced:          s.quiesced,
			ChildSnapshotList: children,
			ReplaySupported:   types.NewBool(false),
		}}
	}
	current := vm.snaps[len(vm.snaps)-1].Self
	return &types.VirtualMachineSnapshotInfo{CurrentSnapshot: &current, RootSnapshotList: children}
}

// removeSnapshot consolidates one snapshot away. Call publish afterwards.
func (vm *LabVM) removeSnapshot(s *LabSnapshot) error {
	for _, d := range vm.disks {
		frozen := s.tops[d.key]
		child := childOf(d, frozen)
		if child == nil {
			return fmt.Errorf("%s: no delta above %s", d.label, frozen.name)
		}
		if err := vm.collapse(d, child, frozen); err != nil {
			return err
		}
	}
	vm.dropSnapshot(s)
	return nil
}

// childOf is the layer of d's chain whose parent is l, or nil.
func childOf(d *disk, l *layer) *layer {
	for x := d.top; x != nil; x = x.parent {
		if x.parent == l {
			return x
		}
	}
	return nil
}

// collapse merges child into its parent: whatever pointed at child (the running
// point, snapshots, a delta above) then points at parent, which shows what
// child showed.
func (vm *LabVM) collapse(d *disk, child, parent *layer) error {
	if err := d.mergeInto(child, parent); err != nil {
		return fmt.Errorf("consolidating %s into %s: %w", child.name, parent.name, err)
	}
	if d.top == child {
		d.top = parent
	}
	for _, o := range vm.snaps {
		if o.tops[d.key] == child {
			o.tops[d.key] = parent
		}
	}
	for l := d.top; l != nil; l = l.parent {
		if l.parent == child {
			l.parent = parent
			_ = d.writeDescriptor(l)
		}
	}
	child.destroy()
	_ = d.writeDescriptor(parent)
	return nil
}

// dropSnapshot takes s out of the tree and its files away, leaving the disk
// layers as they are (removeSnapshot merged them first; a failed
// consolidation leaves them).
func (vm *LabVM) dropSnapshot(s *LabSnapshot) {
	for _, f := range []string{s.vmsn, s.vmem} {
		if f != "" {
			_ = os.Remove(filepath.Join(vm.dir(), f))
		}
	}
	for i, o := range vm.snaps {
		if o == s {
			vm.snaps = append(vm.snaps[:i:i], vm.snaps[i+1:]...)
			break
		}
	}
	simulator.Map.Remove(s.Self)
	vm.lab.stats.snapshotRemoved(s.name)
}

// removeSnapshots removes list (newest first); the removal is a stun.
// With leave (an injected consolidation failure) the snapshots leave the
// tree but their deltas stay in the disk chains, as when ESXi deletes a
// snapshot and then fails to consolidate: runtime.consolidationNeeded.
func (vm *LabVM) removeSnapshots(list []*LabSnapshot, leave bool) *taskFault {
	defer vm.publish()
	defer vm.stunned(func(d *disk) *layer { return d.top })
	for _, s := range list {
		if leave {
			vm.dropSnapshot(s)
			continue
		}
		if err := vm.removeSnapshot(s); err != nil {
			return &taskFault{&types.FileFault{File: vm.dsPath("")}, fmt.Sprintf("An error occurred while consolidating disks: %s", err)}
		}
	}
	if leave {
		return &taskFault{&types.GenericVmConfigFault{Reason: injected("consolidation")}, "An error occurred while consolidating disks: " + injected("consolidation")}
	}
	return nil
}

// leftover is a layer of d's chain below the running one that no snapshot
// froze: a delta a failed consolidation left. Nil when there is none.
func (vm *LabVM) leftover(d *disk) *layer {
	for l := d.top.parent; l != nil; l = l.parent {
		frozen := false
		for _, s := range vm.snaps {
			if s.tops[d.key] == l {
				frozen = true
			}
		}
		if !frozen {
			return l
		}
	}
	return nil
}

func (vm *LabVM) consolidationNeeded() bool {
	for _, d := range vm.disks {
		if vm.leftover(d) != nil {
			return true
		}
	}
	return false
}

// ConsolidateVMDisksTask merges every leftover delta into its parent, so the
// chains are again one layer per snapshot plus the running one. It is a stun.
func (vm *LabVM) ConsolidateVMDisksTask(ctx *simulator.Context, req *types.ConsolidateVMDisks_Task) soap.HasFault {
	ref := runTask(vm, vm, "consolidateVMDisksTask", func() (types.AnyType, *taskFault) {
		if _, ok := vm.lab.faults.take(faultConsolidate, vm.Name); ok {
			return nil, &taskFault{&types.GenericVmConfigFault{Reason: injected("ConsolidateVMDisks_Task")}, "An error occurred while consolidating disks: " + injected("ConsolidateVMDisks_Task")}
		}
		defer vm.publish()
		defer vm.stunned(func(d *disk) *layer { return d.top })
		for _, d := range vm.disks {
			for l := vm.leftover(d); l != nil; l = vm.leftover(d) {
				if err := vm.collapse(d, childOf(d, l), l); err != nil {
					return nil, &taskFault{&types.FileFault{File: vm.dsPath("")}, fmt.Sprintf("An error occurred while consolidating disks: %s", err)}
				}
			}
		}
		return nil, nil
	})
	return &methods.ConsolidateVMDisks_TaskBody{Res: &types.ConsolidateVMDisks_TaskResponse{Returnval: ref}}
}

func (s *LabSnapshot) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	vm := s.vm
	ref := runTask(s, s.vm, "removeSnapshotTask", func() (types.AnyType, *taskFault) {
		i := -1
		for j, o := range vm.snaps {
			if o == s {
				i = j
			}
		}
		if i < 0 {
			return nil, &taskFault{&types.ManagedObjectNotFound{Obj: s.Self}, "The object has already been deleted or has not been completely created"}
		}
		rule, ok := vm.lab.faults.take(faultRemoveSnapshot, vm.Name)
		if ok && !rule.leavesDeltas() {
			return nil, &taskFault{&types.GenericVmConfigFault{Reason: injected("RemoveSnapshot_Task")}, injected("RemoveSnapshot_Task")}
		}
		list := []*LabSnapshot{s}
		if req.RemoveChildren {
			list = nil
			for j := len(vm.snaps) - 1; j >= i; j-- {
				list = append(list, vm.snaps[j])
			}
		}
		return nil, vm.removeSnapshots(list, ok)
	})
	return &methods.RemoveSnapshot_TaskBody{Res: &types.RemoveSnapshot_TaskResponse{Returnval: ref}}
}

func (vm *LabVM) RemoveAllSnapshotsTask(ctx *simulator.Context, req *types.RemoveAllSnapshots_Task) soap.HasFault {
	ref := runTask(vm, vm, "removeAllSnapshotsTask", func() (types.AnyType, *taskFault) {
		if len(vm.snaps) == 0 {
			return nil, nil
		}
		rule, ok := vm.lab.faults.take(faultRemoveSnapshot, vm.Name)
		if ok && !rule.leavesDeltas() {
			return nil, &taskFault{&types.GenericVmConfigFault{Reason: injected("RemoveAllSnapshots_Task")}, injected("RemoveAllSnapshots_Task")}
		}
		var list []*LabSnapshot
		for j := len(vm.snaps) - 1; j >= 0; j-- {
			list = append(list, vm.snaps[j])
		}
		return nil, vm.removeSnapshots(list, ok)
	})
	return &methods.RemoveAllSnapshots_TaskBody{Res: &types.RemoveAllSnapshots_TaskResponse{Returnval: ref}}
}

// Reverting would branch the snapshot tree, which the lab does not model.
func (s *LabSnapshot) RevertToSnapshotTask(ctx *simulator.Context, req *types.RevertToSnapshot_Task) soap.HasFault {
	ref := runTask(s, s.vm, "revertToSnapshotTask", notSupported("reverting to a snapshot"))
	return &methods.RevertToSnapshot_TaskBody{Res: &types.RevertToSnapshot_TaskResponse{Returnval: ref}}
}

func (vm *LabVM) RevertToCurrentSnapshotTask(ctx *simulator.Context, req *types.RevertToCurrentSnapshot_Task) soap.HasFault {
	ref := runTask(vm, vm, "revertToCurrentSnapshotTask", notSupported("reverting to a snapshot"))
	return &methods.RevertToCurrentSnapshot_TaskBody{Res: &types.RevertToCurrentSnapshot_TaskResponse{Returnval: ref}}
}

func notSupported(what string) func() (types.AnyType, *taskFault) {
	return func() (types.AnyType, *taskFault) {
		return nil, &taskFault{&types.NotSupported{}, "lab: " + what + " is not supported"}
	}
}

// RenameSnapshot changes a snapshot's name or description (an empty or absent
// one stays as it was), as vSphere's VirtualMachineSnapshot.RenameSnapshot
// does. vmbkp refreshes its snapshot's description with it while a backup
// runs. A removed snapshot is no longer registered, so the call faults with
// ManagedObjectNotFound before it gets here.
func (s *LabSnapshot) RenameSnapshot(ctx *simulator.Context, req *types.RenameSnapshot) soap.HasFault {
	vm := s.vm
	if req.Name != "" && req.Name != s.name {
		vm.lab.stats.snapshotRemoved(s.name)
		vm.lab.stats.snapshotAdded(req.Name)
		s.name = req.Name
	}
	if req.Description != "" {
		s.description = req.Description
	}
	vm.publish()
	return &methods.RenameSnapshotBody{Res: &types.RenameSnapshotResponse{}}
}
