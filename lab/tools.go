package main

// VMware Tools in the guest, as far as backups care: whether a snapshot can
// be quiesced. The vSphere API reference (CreateSnapshot_Task, `quiesce`):
// "If TRUE and the virtual machine is powered on when the snapshot is
// taken, VMware Tools is used to quiesce the file system in the virtual
// machine. … If the virtual machine is powered off or VMware Tools are not
// available, the quiesce flag is ignored." The snapshot tree's `quiesced`
// then says whether it really was.

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// The Tools of a lab VM, as the control endpoint sets them ("" is running).
const (
	toolsRunning      = "running"      // installed, running whenever the VM is on
	toolsNotRunning   = "notRunning"   // installed, service stopped
	toolsNotInstalled = "notInstalled" // no Tools in the guest
)

// labToolsVersion is what guest.toolsVersion reports for installed Tools (12.3.0).
const labToolsVersion = "12352"

func validToolsState(s string) bool {
	return s == toolsRunning || s == toolsNotRunning || s == toolsNotInstalled
}

func (vm *LabVM) toolsState() string {
	if vm.tools == "" {
		return toolsRunning
	}
	return vm.tools
}

// toolsRunNow says whether the guest's Tools answer right now: installed,
// running, and the VM powered on.
func (vm *LabVM) toolsRunNow() bool {
	return vm.toolsState() == toolsRunning && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
}

// publishGuest sets the guest's Tools properties from the Tools state and the
// power state, as vCenter reports them. Call with the lock held.
func (vm *LabVM) publishGuest() {
	g := types.GuestInfo{}
	if vm.Guest != nil {
		g = *vm.Guest
	}
	switch {
	case vm.toolsState() == toolsNotInstalled:
		g.ToolsStatus = types.VirtualMachineToolsStatusToolsNotInstalled
		g.ToolsRunningStatus = string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
		g.ToolsVersionStatus2 = string(types.VirtualMachineToolsVersionStatusGuestToolsNotInstalled)
		g.ToolsVersion = "0"
	case vm.toolsRunNow():
		g.ToolsStatus = types.VirtualMachineToolsStatusToolsOk
		g.ToolsRunningStatus = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		g.ToolsVersionStatus2 = string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)
		g.ToolsVersion = labToolsVersion
	default:
		g.ToolsStatus = types.VirtualMachineToolsStatusToolsNotRunning
		g.ToolsRunningStatus = string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
		g.ToolsVersionStatus2 = string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)
		g.ToolsVersion = labToolsVersion
	}
	sg := types.VirtualMachineGuestSummary{}
	if vm.Summary.Guest != nil {
		sg = *vm.Summary.Guest
	}
	sg.ToolsStatus = g.ToolsStatus
	sg.ToolsRunningStatus = g.ToolsRunningStatus
	sg.ToolsVersionStatus2 = g.ToolsVersionStatus2
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "guest", Val: &g},
		{Name: "summary.guest", Val: &sg},
	})
}

// Powering on or off starts or stops the guest's Tools (PowerOnVMTask is in vm.go).
func (vm *LabVM) PowerOffVMTask(ctx *simulator.Context, req *types.PowerOffVM_Task) soap.HasFault {
	res := vm.VirtualMachine.PowerOffVMTask(ctx, req)
	vm.publishGuest()
	return res
}

// quiesceFault is what a quiesced CreateSnapshot_Task fails with when the
// guest cannot quiesce (a VSS writer or a pre-freeze script fails).
func quiesceFault() *taskFault {
	return &taskFault{&types.ApplicationQuiesceFault{}, "An error occurred while saving the snapshot: Failed to quiesce the virtual machine."}
}
