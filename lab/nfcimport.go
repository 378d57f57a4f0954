package main

// Import leases: ResourcePool.ImportVApp with a VirtualMachineImportSpec
// creates the VM (as CreateVM_Task would, so with lab disks) and returns an
// HttpNfcLease whose info.deviceUrl gives one upload URL per disk. The
// client POSTs each disk as a streamOptimized VMDK (govmomi's nfc.Lease
// uses POST for a disk the import creates, PUT for a file it creates); the
// lab decodes the stream into the VM's disk, which is how it reaches a vSAN
// datastore that /folder cannot write. The lease is kept alive, completed
// or aborted as an export lease is (nfc.go); an import lease that is aborted
// or times out removes the VM it made, as a failed import in vCenter leaves
// no VM (see lab/README.md, "Import leases", for what the reference says).

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// vmImporter handles ImportVApp for one resource pool, registered under a
// moref of its own as vmCreator is for CreateVM_Task (folder.go).
type vmImporter struct {
	mo.ResourcePool

	lab  *Lab
	pool types.ManagedObjectReference
}

var importers sync.Mutex

// routeImportVApp sends an ImportVApp on pool to that pool's vmImporter.
func (lab *Lab) routeImportVApp(body []byte, pool string) []byte {
	ref := types.ManagedObjectReference{Type: "ResourcePool", Value: pool}
	if _, ok := simulator.Map.Get(ref).(*simulator.ResourcePool); !ok {
		return body // the simulator answers (or faults) itself
	}
	proxy := types.ManagedObjectReference{Type: "ResourcePool", Value: pool + "-lab"}
	importers.Lock()
	if simulator.Map.Get(proxy) == nil {
		imp := &vmImporter{lab: lab, pool: ref}
		imp.Self = proxy
		simulator.Map.Put(imp)
	}
	importers.Unlock()
	re := regexp.MustCompile(`(<_this\b[^>]*>)\s*` + regexp.QuoteMeta(pool) + `\s*(</_this>)`)
	loc := re.FindSubmatchIndex(body)
	if loc == nil {
		return body
	}
	out := append([]byte{}, body[:loc[3]]...)
	out = append(out, proxy.Value...)
	return append(out, body[loc[4]:]...)
}

func (imp *vmImporter) ImportVApp(ctx *simulator.Context, req *types.ImportVApp) soap.HasFault {
	body := &methods.ImportVAppBody{}
	spec, ok := req.Spec.(*types.VirtualMachineImportSpec)
	if !ok {
		body.Fault_ = simulator.Fault(fmt.Sprintf("%T: type not supported", req.Spec), &types.InvalidArgument{InvalidProperty: "spec"})
		return body
	}
	if req.Folder == nil {
		body.Fault_ = simulator.Fault("lab: ImportVApp needs a folder", &types.InvalidArgument{InvalidProperty: "folder"})
		return body
	}
	f, ok := simulator.Map.Get(*req.Folder).(*simulator.Folder)
	if !ok {
		body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: *req.Folder})
		return body
	}
	res, tf := imp.lab.createVMFromSpec(ctx, f, &types.CreateVM_Task{This: f.Self, Config: spec.ConfigSpec, Pool: imp.pool, Host: req.Host})
	if tf != nil {
		body.Fault_ = simulator.Fault(tf.msg, tf.fault)
		return body
	}
	vm, ok := simulator.Map.Get(res.(types.ManagedObjectReference)).(*LabVM)
	if !ok {
		body.Fault_ = simulator.Fault("lab: the imported VM is not a lab VM", &types.InvalidState{})
		return body
	}
	l := imp.lab.newLease(vm, func(d *disk) *layer { return d.top })
	l.imported = true
	l.ctx = ctx
	body.Res = &types.ImportVAppResponse{Returnval: l.Self}
	return body
}

// removeImported destroys the VM of an import lease that did not complete.
func (l *LabLease) removeImported() {
	if !l.imported {
		return
	}
	log.Printf("lab: import lease %s ended without completing: removing VM %s", l.Self.Value, l.vm.Name)
	l.vm.DestroyTask(l.ctx, &types.Destroy_Task{This: l.vm.Self})
}

// controllerSlot is vCenter's device id part for a disk: the type of its
// controller, the controller's bus and the disk's unit.
func controllerSlot(vm *LabVM, d *disk) string {
	for _, dev := range vm.Config.Hardware.Device {
		vd, ok := dev.(*types.VirtualDisk)
		if !ok || vd.Key != d.key {
			continue
		}
		for _, c := range vm.Config.Hardware.Device {
			ctl, ok := c.(types.BaseVirtualController)
			if ok && c.GetVirtualDevice().Key == vd.ControllerKey {
				typ := strings.TrimPrefix(fmt.Sprintf("%T", c), "*types.")
				return fmt.Sprintf("%s%d:%d", typ, ctl.GetVirtualController().BusNumber, d.unit)
			}
		}
	}
	return fmt.Sprintf("ParaVirtualSCSIController0:%d", d.unit)
}

// serveNFCUpload answers POST (or PUT) /nfc/<lease>/<file> of an import
// lease: a streamOptimized VMDK written into the disk. A datastore-full
// fault (during=write) on the VM fails the upload after ?after= disk bytes.
func (lab *Lab) serveNFCUpload(w http.ResponseWriter, r *http.Request, l *LabLease, name string, f nfcFile) {
	if !l.imported {
		uploadFail(w, r, http.StatusMethodNotAllowed, "lab: lease %s is an export lease: its URLs are read with GET", l.Self.Value)
		return
	}
	dir := l.vm.dirName
	defer lab.stats.writes.begin(dir, "nfc/"+name)()
	lab.stats.writes.await(dir, "nfc/"+name) // the gate holds uploads as it holds PUTs under /folder
	limit := int64(-1)
	if rule, ok := lab.faults.takeIf(faultDatastoreFull, dir, func(r faultRule) bool { return r.During == duringWrite }); ok {
		limit = rule.After
		log.Printf("lab: injected fault: datastore full for nfc upload %s after %d bytes", r.URL.Path, limit)
	}
	err := readStreamVMDK(r.Body, f.d.capacity, func(off int64, p []byte) error {
		if !l.isLive() {
			return fmt.Errorf("the lease has ended")
		}
		if limit >= 0 && off+int64(len(p)) > limit {
			return fmt.Errorf("Insufficient disk space on datastore '%s'.", lab.dsName)
		}
		l.vm.Lock()
		defer l.vm.Unlock()
		lab.stats.nfcImported.Add(int64(len(p)))
		return f.d.upload(p, off)
	})
	if err != nil {
		uploadFail(w, r, http.StatusInternalServerError, "lab: nfc upload %s: %v", r.URL.Path, err)
		return
	}
	l.vm.Lock()
	f.d.top.cid = randCID()
	_ = f.d.writeDescriptor(f.d.top)
	l.vm.publish()
	l.vm.Unlock()
	w.WriteHeader(http.StatusOK)
}

// readStreamVMDK decodes a streamOptimized VMDK of a capacity-byte disk,
// handing each grain to put; metadata (grain tables, directory, footer) is
// skipped, as a streaming reader may. It fails on anything else.
func readStreamVMDK(r io.Reader, capacity int64, put func(off int64, p []byte) error) error {
	h := make([]byte, sectorSize)
	if _, err := io.ReadFull(r, h); err != nil {
		return fmt.Errorf("reading the sparse header: %v", err)
	}
	le := binary.LittleEndian
	flags := le.Uint32(h[8:])
	if le.Uint32(h[0:]) != sparseMagic || flags&(1<<16) == 0 || flags&(1<<17) == 0 || le.Uint16(h[77:]) != 1 {
		return fmt.Errorf("not a streamOptimized VMDK")
	}
	if int64(le.Uint64(h[12:]))*sectorSize != capacity {
		return fmt.Errorf("the stream's disk has %d bytes, the VM's %d", int64(le.Uint64(h[12:]))*sectorSize, capacity)
	}
	if int64(le.Uint64(h[20:]))*sectorSize != grainSize {
		return fmt.Errorf("lab: grains of %d sectors are not supported (only %d)", le.Uint64(h[20:]), grainSize/sectorSize)
	}
	if _, err := io.CopyN(io.Discard, r, int64(le.Uint64(h[64:])-1)*sectorSize); err != nil {
		return fmt.Errorf("skipping the descriptor: %v", err)
	}
	m := make([]byte, sectorSize)
	for {
		if _, err := io.ReadFull(r, m[:12]); err != nil {
			return fmt.Errorf("the stream ended without its end-of-stream marker: %v", err)
		}
		value, size := le.Uint64(m[0:]), le.Uint32(m[8:])
		if size == 0 {
			if _, err := io.ReadFull(r, m[12:]); err != nil {
				return fmt.Errorf("the stream ended inside a marker: %v", err)
			}
			if le.Uint32(m[12:]) == 0 {
				return nil // end of stream
			}
			if _, err := io.CopyN(io.Discard, r, int64(value)*sectorSize); err != nil {
				return fmt.Errorf("the stream ended inside metadata: %v", err)
			}
			continue
		}
		z := make([]byte, int(size)+(sectorSize-(12+int(size))%sectorSize)%sectorSize)
		if _, err := io.ReadFull(r, z); err != nil {
			return fmt.Errorf("the stream ended inside a grain: %v", err)
		}
		zr, err := zlib.NewReader(bytes.NewReader(z[:size]))
		if err != nil {
			return fmt.Errorf("grain at sector %d: %v", value, err)
		}
		data, err := io.ReadAll(io.LimitReader(zr, grainSize+1))
		if err != nil {
			return fmt.Errorf("grain at sector %d: %v", value, err)
		}
		off := int64(value) * sectorSize
		if off%grainSize != 0 || len(data) > grainSize || off+int64(len(data)) > capacity {
			return fmt.Errorf("a grain at sector %d (%d bytes) is not a grain of the disk", value, len(data))
		}
		if err := put(off, data); err != nil {
			return err
		}
	}
}
