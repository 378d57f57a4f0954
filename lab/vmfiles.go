package main

// A VM's configuration files as ESXi keeps them in its directory: NAME.vmx,
// the configuration as `key = "value"` lines, and the nvram file, the state of
// the VM's BIOS or UEFI firmware (EFI variables, boot order, Secure Boot keys).
// VMware's table of virtual machine files names it "vmname.nvram or nvram",
// and the .vmx's `nvram` key says which file it is. The VDDK programming
// guide ("Restoring the Virtual BIOS or UEFI") has backup applications save
// it and, on restore, overwrite the VM's .nvram with the saved copy.
//
// ESXi creates the nvram file at a VM's first power on, with the firmware's
// defaults, when there is none; the lab does the same when it is missing or
// empty (the simulator leaves an empty one at CreateVM_Task). The lab's
// starting VMs have been powered on, so theirs hold settings of their own.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// nvram sizes: a BIOS keeps a few KiB, OVMF-like UEFI variable stores are far larger.
const (
	biosNvramSize = 8 << 10
	efiNvramSize  = 128 << 10
)

// nvramName is the VM's nvram file in its directory: the .vmx's `nvram` key, else NAME.nvram.
func (vm *LabVM) nvramName() string {
	for _, o := range vm.Config.ExtraConfig {
		if v := o.GetOptionValue(); v.Key == "nvram" {
			if s, ok := v.Value.(string); ok && s != "" {
				return path.Base(s)
			}
		}
	}
	return vm.Name + ".nvram"
}

func (vm *LabVM) nvramPath() string { return filepath.Join(vm.dir(), vm.nvramName()) }

func (vm *LabVM) vmxPath() string {
	var p object.DatastorePath
	if p.FromString(vm.Config.Files.VmPathName) && strings.HasSuffix(p.Path, ".vmx") {
		return filepath.Join(vm.lab.dsDir, filepath.FromSlash(p.Path))
	}
	return filepath.Join(vm.dir(), vm.Name+".vmx")
}

// firmwareDefaults is what a firmware writes to a new nvram: deterministic
// bytes seeded by the firmware and the VM (name and BIOS UUID), so two VMs'
// files differ, as their generated settings (and a restored VM's, unless the
// saved file is put back) would.
func firmwareDefaults(firmware, name, uuid string) []byte {
	size := biosNvramSize
	if firmware == string(types.GuestOsDescriptorFirmwareTypeEfi) {
		size = efiNvramSize
	}
	b := make([]byte, size)
	sum := sha256.Sum256([]byte(firmware + "\x00" + name + "\x00" + uuid))
	s := splitmix(binary.LittleEndian.Uint64(sum[:8]))
	s.fill(b)
	copy(b, fmt.Sprintf("lab nvram %s\n", firmware))
	return b
}

// ensureNvram gives the VM its firmware's defaults when its nvram file is missing or
// empty (ESXi at power on). Call with the lock held.
func (vm *LabVM) ensureNvram() error {
	if st, err := os.Stat(vm.nvramPath()); err == nil && st.Size() > 0 {
		return nil
	}
	return os.WriteFile(vm.nvramPath(), firmwareDefaults(vm.Config.Firmware, vm.Name, vm.Config.Uuid), 0o600)
}

// writeVmx writes the .vmx from the VM's configuration, as ESXi rewrites it on
// every change. Call with the lock held.
func (vm *LabVM) writeVmx() error {
	var b strings.Builder
	kv := func(k string, v interface{}) { fmt.Fprintf(&b, "%s = %q\n", k, fmt.Sprint(v)) }
	kv(".encoding", "UTF-8")
	kv("config.version", "8")
	kv("virtualHW.version", strings.TrimPrefix(vm.Config.Version, "vmx-"))
	kv("displayName", vm.Name)
	kv("guestOS", vm.Config.GuestId)
	kv("firmware", vm.Config.Firmware)
	kv("nvram", vm.nvramName())
	kv("numvcpus", vm.Config.Hardware.NumCPU)
	kv("memSize", vm.Config.Hardware.MemoryMB)
	kv("uuid.bios", vm.Config.Uuid)
	kv("vc.uuid", vm.Config.InstanceUuid)
	kv("ctkEnabled", strings.ToUpper(fmt.Sprint(vm.cbtOn)))
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for _, d := range vm.disks {
		prefix := fmt.Sprintf("disk%d", d.key)
		if vd, ok := devices.FindByKey(d.key).(*types.VirtualDisk); ok {
			if ctl, ok := devices.FindByKey(vd.ControllerKey).(types.BaseVirtualController); ok {
				prefix = fmt.Sprintf("%s%d:%d", busPrefix(ctl), ctl.GetVirtualController().BusNumber, d.unit)
			}
		}
		kv(prefix+".present", "TRUE")
		kv(prefix+".fileName", d.top.descriptorName())
	}
	for _, o := range vm.Config.ExtraConfig {
		if v := o.GetOptionValue(); v.Key != "nvram" {
			kv(v.Key, v.Value)
		}
	}
	return os.WriteFile(vm.vmxPath(), []byte(b.String()), 0o600)
}

// busPrefix is how a .vmx names a controller's bus ("scsi0:1.fileName").
func busPrefix(ctl types.BaseVirtualController) string {
	switch ctl.(type) {
	case types.BaseVirtualSATAController:
		return "sata"
	case *types.VirtualNVMEController:
		return "nvme"
	case *types.VirtualIDEController:
		return "ide"
	}
	return "scsi"
}
