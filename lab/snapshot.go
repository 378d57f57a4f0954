package main

// Snapshots that freeze disks. Creating one freezes each disk's running
// layer and puts a delta on top; removing one consolidates: the layer above
// its frozen point is merged down into it, so every other view (the guest's
// and the remaining snapshots') stays byte for byte what it was.
//
// Snapshots form a tree, as in vSphere: reverting to a snapshot discards the
// running delta and starts a new one on the snapshot's frozen layer, so that
// layer may get a second child (a branch), and a snapshot taken afterwards
// is a sibling of the older children. A frozen layer with two children
// cannot be merged into either: removing its snapshot leaves it in place,
// shared by both branches, until one branch is gone (see consolidate).

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
	parent      *LabSnapshot     // nil for a root
	cbtOn       bool             // change tracking at snapshot time
	extraConfig []types.BaseOptionValue
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
		parent:      vm.current,
		cbtOn:       vm.cbtOn,
		extraConfig: append([]types.BaseOptionValue(nil), vm.Config.ExtraConfig...),
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
	s.Config.ExtraConfig = s.extraConfig
	simulator.Map.Put(s)
	vm.snaps = append(vm.snaps, s)
	vm.current = s
	vm.lab.stats.snapshotAdded(s.name)
	vm.publish()
	return s, nil
}

// children lists the snapshots whose parent is s (nil: the roots), oldest first.
func (vm *LabVM) children(s *LabSnapshot) []*LabSnapshot {
	var out []*LabSnapshot
	for _, o := range vm.snaps {
		if o.parent == s {
			out = append(out, o)
		}
	}
	return out
}

func (vm *LabVM) snapshotTree(parent *LabSnapshot) []types.VirtualMachineSnapshotTree {
	var out []types.VirtualMachineSnapshotTree
	for _, s := range vm.children(parent) {
		out = append(out, types.VirtualMachineSnapshotTree{
			Snapshot:          s.Self,
			Vm:                vm.Self,
			Name:              s.name,
			Description:       s.description,
			Id:                s.id,
			CreateTime:        s.created,
			State:             s.state,
			Quiesced:          s.quiesced,
			ChildSnapshotList: vm.snapshotTree(s),
			ReplaySupported:   types.NewBool(false),
		})
	}
	return out
}

func (vm *LabVM) snapshotInfo() *types.VirtualMachineSnapshotInfo {
	info := &types.VirtualMachineSnapshotInfo{RootSnapshotList: vm.snapshotTree(nil)}
	if vm.current != nil {
		current := vm.current.Self
		info.CurrentSnapshot = &current
	}
	return info
}

// layers is every layer of d that the running point or a snapshot needs.
func (vm *LabVM) layers(d *disk) map[*layer]bool {
	out := map[*layer]bool{}
	for _, l := range chain(d.top) {
		out[l] = true
	}
	for _, s := range vm.snaps {
		for _, l := range chain(s.tops[d.key]) {
			out[l] = true
		}
	}
	return out
}

// consolidate tidies d's layers after the running point or a snapshot let go
// of some (before: the layers needed until then). A layer that neither the
// running point nor a snapshot freezes, and that has exactly one child, gets
// that child merged into it (the views through the child stay the same);
// layers nobody needs any more are deleted. A layer with two children (a
// branch point) stays.
func (vm *LabVM) consolidate(d *disk, before map[*layer]bool) error {
	for {
		// Leftovers of a failed consolidation wait for ConsolidateVMDisks_Task.
		owned := map[*layer]bool{d.top: true}
		for l := range vm.leftovers {
			owned[l] = true
		}
		for _, s := range vm.snaps {
			owned[s.tops[d.key]] = true
		}
		now := vm.layers(d)
		kids := map[*layer][]*layer{}
		for l := range now {
			if l.parent != nil {
				kids[l.parent] = append(kids[l.parent], l)
			}
		}
		// Lowest first: deltas fold into the base, as ESXi consolidates.
		var target *layer
		for _, l := range chain(d.top) {
			if !owned[l] && len(kids[l]) == 1 && target == nil {
				target = l
			}
		}
		for l := range now {
			if target == nil && !owned[l] && len(kids[l]) == 1 {
				target = l
			}
		}
		if target == nil {
			break
		}
		child := kids[target][0]
		if err := d.mergeInto(child, target); err != nil {
			return fmt.Errorf("consolidating %s into %s: %w", child.name, target.name, err)
		}
		// Whatever pointed at the merged delta now points at its parent.
		if d.top == child {
			d.top = target
		}
		for _, o := range vm.snaps {
			if o.tops[d.key] == child {
				o.tops[d.key] = target
			}
		}
		for l := range now {
			if l.parent == child {
				l.parent = target
				_ = d.writeDescriptor(l)
			}
		}
		_ = d.writeDescriptor(target)
		before[child] = true
	}
	now := vm.layers(d)
	for l := range before {
		if !now[l] {
			l.destroy()
		}
	}
	return nil
}

// removeSnapshot takes one snapshot out of the tree (its children move up
// to its parent, as in vSphere) and consolidates. Call publish afterwards.
func (vm *LabVM) removeSnapshot(s *LabSnapshot) error {
	before := map[int32]map[*layer]bool{}
	for _, d := range vm.disks {
		before[d.key] = vm.layers(d)
	}
	vm.dropSnapshot(s)
	for _, d := range vm.disks {
		if err := vm.consolidate(d, before[d.key]); err != nil {
			return err
		}
	}
	return nil
}

// dropSnapshot takes s out of the tree and its files away, leaving the disk
// layers as they are: removeSnapshot consolidates next, a failed
// consolidation (removeSnapshots with leave) does not.
func (vm *LabVM) dropSnapshot(s *LabSnapshot) {
	for _, o := range vm.snaps {
		if o.parent == s {
			o.parent = s.parent
		}
	}
	if vm.current == s {
		vm.current = s.parent
	}
	for i, o := range vm.snaps {
		if o == s {
			vm.snaps = append(vm.snaps[:i:i], vm.snaps[i+1:]...)
			break
		}
	}
	for _, f := range []string{s.vmsn, s.vmem} {
		if f != "" {
			_ = os.Remove(filepath.Join(vm.dir(), f))
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
			if vm.leftovers == nil {
				vm.leftovers = map[*layer]bool{}
			}
			for _, d := range vm.disks {
				vm.leftovers[s.tops[d.key]] = true
			}
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

// consolidationNeeded: a failed consolidation left deltas that no snapshot
// needs any more (runtime.consolidationNeeded).
func (vm *LabVM) consolidationNeeded() bool {
	for _, d := range vm.disks {
		for l := range vm.layers(d) {
			if vm.leftovers[l] {
				return true
			}
		}
	}
	return false
}

// ConsolidateVMDisksTask merges the leftover deltas into their parents, so the
// chains are again one layer per snapshot plus the running one. It is a stun.
func (vm *LabVM) ConsolidateVMDisksTask(ctx *simulator.Context, req *types.ConsolidateVMDisks_Task) soap.HasFault {
	ref := runTask(vm, vm, "consolidateVMDisksTask", func() (types.AnyType, *taskFault) {
		if _, ok := vm.lab.faults.take(faultConsolidate, vm.Name); ok {
			return nil, &taskFault{&types.GenericVmConfigFault{Reason: injected("ConsolidateVMDisks_Task")}, "An error occurred while consolidating disks: " + injected("ConsolidateVMDisks_Task")}
		}
		defer vm.publish()
		defer vm.stunned(func(d *disk) *layer { return d.top })
		vm.leftovers = map[*layer]bool{}
		for _, d := range vm.disks {
			if err := vm.consolidate(d, vm.layers(d)); err != nil {
				return nil, &taskFault{&types.FileFault{File: vm.dsPath("")}, fmt.Sprintf("An error occurred while consolidating disks: %s", err)}
			}
		}
		return nil, nil
	})
	return &methods.ConsolidateVMDisks_TaskBody{Res: &types.ConsolidateVMDisks_TaskResponse{Returnval: ref}}
}

// subtree is s and its descendants, newest first (children before parents).
func (vm *LabVM) subtree(s *LabSnapshot) []*LabSnapshot {
	in := map[*LabSnapshot]bool{s: true}
	for _, o := range vm.snaps { // oldest first: a parent is seen before its children
		if o.parent != nil && in[o.parent] {
			in[o] = true
		}
	}
	var out []*LabSnapshot
	for j := len(vm.snaps) - 1; j >= 0; j-- {
		if in[vm.snaps[j]] {
			out = append(out, vm.snaps[j])
		}
	}
	return out
}

func (s *LabSnapshot) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	vm := s.vm
	run := runTask
	if slow := vm.lab.slow.get(vm.Name); slow != nil { // slowtask.go
		run = func(obj mo.Reference, vm *LabVM, name string, fn func() (types.AnyType, *taskFault)) types.ManagedObjectReference {
			return runSlowTask(obj, vm, name, slow, fn)
		}
	}
	busy := vm.taskInProgress()
	if busy != nil {
		run = runTask
	}
	ref := run(s, s.vm, "removeSnapshotTask", func() (types.AnyType, *taskFault) {
		if busy != nil {
			return nil, busy
		}
		if vm.snapshot(s.Self) == nil {
			return nil, &taskFault{&types.ManagedObjectNotFound{Obj: s.Self}, "The object has already been deleted or has not been completely created"}
		}
		rule, ok := vm.lab.faults.take(faultRemoveSnapshot, vm.Name)
		if ok && !rule.leavesDeltas() {
			return nil, &taskFault{&types.GenericVmConfigFault{Reason: injected("RemoveSnapshot_Task")}, injected("RemoveSnapshot_Task")}
		}
		list := []*LabSnapshot{s}
		if req.RemoveChildren {
			list = vm.subtree(s)
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

// RevertToSnapshotTask makes the snapshot's point the running one again:
// each disk's running delta is discarded and a new one starts on the
// snapshot's frozen layer; the VM's advanced settings, change tracking and
// power state are the snapshot's (a snapshot without memory of a running VM
// reverts to powered off, as in vSphere).
func (s *LabSnapshot) RevertToSnapshotTask(ctx *simulator.Context, req *types.RevertToSnapshot_Task) soap.HasFault {
	vm := s.vm
	ref := runTask(s, vm, "revertToSnapshotTask", func() (types.AnyType, *taskFault) {
		if vm.snapshot(s.Self) == nil {
			return nil, &taskFault{&types.ManagedObjectNotFound{Obj: s.Self}, "The object has already been deleted or has not been completely created"}
		}
		return nil, vm.revertTo(s, req.SuppressPowerOn != nil && *req.SuppressPowerOn)
	})
	return &methods.RevertToSnapshot_TaskBody{Res: &types.RevertToSnapshot_TaskResponse{Returnval: ref}}
}

func (vm *LabVM) RevertToCurrentSnapshotTask(ctx *simulator.Context, req *types.RevertToCurrentSnapshot_Task) soap.HasFault {
	ref := runTask(vm, vm, "revertToCurrentSnapshotTask", func() (types.AnyType, *taskFault) {
		if vm.current == nil {
			return nil, &taskFault{&types.NotFound{}, fmt.Sprintf("%s has no current snapshot", vm.Name)}
		}
		return nil, vm.revertTo(vm.current, req.SuppressPowerOn != nil && *req.SuppressPowerOn)
	})
	return &methods.RevertToCurrentSnapshot_TaskBody{Res: &types.RevertToCurrentSnapshot_TaskResponse{Returnval: ref}}
}

func (vm *LabVM) revertTo(s *LabSnapshot, suppressPowerOn bool) *taskFault {
	defer vm.publish()
	fault := func(err error) *taskFault {
		return &taskFault{&types.FileFault{File: vm.dsPath("")}, fmt.Sprintf("An error occurred while reverting to snapshot %s: %s", s.name, err)}
	}
	for _, d := range vm.disks {
		before := vm.layers(d)
		d.top = s.tops[d.key]
		if err := vm.consolidate(d, before); err != nil { // drops the old running delta
			return fault(err)
		}
		if _, err := d.pushDelta(); err != nil {
			return fault(err)
		}
	}
	vm.current = s
	vm.Config.ExtraConfig = append([]types.BaseOptionValue(nil), s.extraConfig...)

	// Change tracking goes back with the disks: within the same tracking
	// session the sequence returns to the snapshot's point, so later writes
	// reuse numbers handed out on the discarded branch (see cbt.rewind).
	vm.cbtOn = s.cbtOn
	vm.cbtPending = false // the revert is a stun; tracking is as the snapshot had it
	for _, d := range vm.disks {
		prefix, seq, perr := parseChangeID(s.changeIDs[d.key])
		switch {
		case !s.cbtOn:
			d.cbt.reset(false)
		case perr == nil && prefix == d.cbt.prefix:
			d.cbt.rewind(seq)
		default:
			d.cbt.reset(true)
		}
	}

	state := types.VirtualMachinePowerStatePoweredOff
	if s.state == types.VirtualMachinePowerStatePoweredOn && s.vmem != "" && !suppressPowerOn {
		state = types.VirtualMachinePowerStatePoweredOn
	}
	vm.Runtime.PowerState = state
	vm.Summary.Runtime.PowerState = state
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "runtime.powerState", Val: state},
		{Name: "summary.runtime.powerState", Val: state},
		{Name: "config.extraConfig", Val: vm.Config.ExtraConfig},
	})
	return nil
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
