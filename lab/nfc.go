package main

// Export leases (HttpNfcLease), as ExportVm and ExportSnapshot give them: the
// disks of a VM (powered off) or of a snapshot, downloadable from the URLs in
// the lease's info.deviceUrl as streamOptimized VMDKs (nfcstream.go). The
// lease must be kept alive with HttpNfcLeaseProgress; without a call for
// --nfc-lease-timeout it times out (state error). While a lease is held the
// VM's tasks are refused (snapshots, reconfiguration, destroy), so a lease a
// killed client left holds the VM until it times out or is aborted — from
// any session: the lease is a vCenter object, not one of its creator's session.

import (
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// nfcLeaseTimeout is the timeout of new leases: --nfc-lease-timeout, or
// POST /nfc/lease-timeout (vSphere: about 5 minutes).
var nfcLeaseTimeout atomic.Int64

const nfcPrefix = "/nfc/"

// LabLease is an HttpNfcLease managed object plus the disks it serves.
type LabLease struct {
	mo.HttpNfcLease

	lab     *Lab
	vm      *LabVM
	files   map[string]nfcFile // URL file name -> disk view
	timer   *time.Timer
	timeout time.Duration
	live    bool // guarded by lab.leases.mu

	imported bool               // an ImportVApp lease (nfcimport.go): its URLs take uploads
	ctx      *simulator.Context // the ImportVApp call's, to remove the VM if the import fails
}

type nfcFile struct {
	d   *disk
	top *layer
}

// leases are the export leases of the lab, live or ended.
type leases struct {
	mu   sync.Mutex
	byID map[string]*LabLease
}

// leaseBlock refuses a task of vm while a lease holds it (vSphere API,
// HttpNfcLease: "While the lease is held, operations that alter the state of
// the virtual machines covered by the lease are blocked").
func (lab *Lab) leaseBlock(vm *LabVM) *taskFault {
	lab.leases.mu.Lock()
	defer lab.leases.mu.Unlock()
	for _, l := range lab.leases.byID {
		if l.live && l.vm == vm {
			kind := "export"
			if l.imported {
				kind = "import"
			}
			msg := fmt.Sprintf("The operation is not allowed in the current state: VM %s is held by %s lease %s.", vm.Name, kind, l.Self.Value)
			return &taskFault{&types.InvalidState{}, msg}
		}
	}
	return nil
}

func (lab *Lab) leasesHeld() int64 {
	lab.leases.mu.Lock()
	defer lab.leases.mu.Unlock()
	n := int64(0)
	for _, l := range lab.leases.byID {
		if l.live {
			n++
		}
	}
	return n
}

// newLease makes a ready lease on vm for the disks as seen through top(d).
func (lab *Lab) newLease(vm *LabVM, top func(*disk) *layer) *LabLease {
	l := &LabLease{lab: lab, vm: vm, files: map[string]nfcFile{}, live: true, timeout: time.Duration(nfcLeaseTimeout.Load())}
	l.Self.Type = "HttpNfcLease"
	simulator.Map.Put(l)
	info := &types.HttpNfcLeaseInfo{Lease: l.Self, Entity: vm.Self, LeaseTimeout: int32(l.timeout / time.Second)}
	units := map[int32]bool{}
	for i, d := range vm.disks {
		name := fmt.Sprintf("disk-%d.vmdk", i)
		l.files[name] = nfcFile{d: d, top: top(d)}
		units[d.unit] = true
		info.DeviceUrl = append(info.DeviceUrl, types.HttpNfcLeaseDeviceUrl{
			// vCenter's key: the VM, the controller type and bus, the unit.
			Key:           fmt.Sprintf("/%s/%s", vm.Self.Value, controllerSlot(vm, d)),
			ImportKey:     fmt.Sprintf("/%s/%s", vm.Name, controllerSlot(vm, d)),
			Url:           fmt.Sprintf("https://*:%d%s%s/%s", lab.httpsPort, nfcPrefix, l.Self.Value, name),
			Disk:          types.NewBool(true),
			SslThumbprint: lab.sslThumbprint, // "SSL thumbprint for the host the URL refers to"
			TargetId:      name,
		})
		info.TotalDiskCapacityInKB += d.capacity / 1024
	}
	l.Info = info
	l.State = types.HttpNfcLeaseStateReady
	lab.leases.mu.Lock()
	if lab.leases.byID == nil {
		lab.leases.byID = map[string]*LabLease{}
	}
	lab.leases.byID[l.Self.Value] = l
	lab.leases.mu.Unlock()
	l.timer = time.AfterFunc(l.timeout, func() {
		if l.end() {
			lab.stats.nfcExpired.Add(1)
			log.Printf("lab: export lease %s of VM %s timed out", l.Self.Value, vm.Name)
			simulator.Map.WithLock(l, func() {
				l.fail(&types.Timedout{}, "The lease timed out: no HttpNfcLeaseProgress call within its timeout.")
			})
			l.removeImported()
		}
	})
	return l
}

// end takes the lease off the VM; false when it had ended already.
func (l *LabLease) end() bool {
	l.lab.leases.mu.Lock()
	defer l.lab.leases.mu.Unlock()
	if !l.live {
		return false
	}
	l.live = false
	l.timer.Stop()
	return true
}

func (l *LabLease) isLive() bool {
	l.lab.leases.mu.Lock()
	defer l.lab.leases.mu.Unlock()
	return l.live
}

func (l *LabLease) fail(f types.BaseMethodFault, msg string) {
	l.State = types.HttpNfcLeaseStateError
	l.Error = &types.LocalizedMethodFault{Fault: f, LocalizedMessage: msg}
}

func notLive(l *LabLease) *soap.Fault {
	return simulator.Fault(fmt.Sprintf("The lease %s is in state %s.", l.Self.Value, l.State), &types.InvalidState{})
}

func (l *LabLease) HttpNfcLeaseProgress(ctx *simulator.Context, req *types.HttpNfcLeaseProgress) soap.HasFault {
	l.lab.stats.nfcProgress.Add(1)
	l.lab.leases.mu.Lock()
	live := l.live
	if live {
		l.timer.Reset(l.timeout)
	}
	l.lab.leases.mu.Unlock()
	if !live {
		return &methods.HttpNfcLeaseProgressBody{Fault_: notLive(l)}
	}
	l.TransferProgress = req.Percent
	return &methods.HttpNfcLeaseProgressBody{Res: &types.HttpNfcLeaseProgressResponse{}}
}

func (l *LabLease) HttpNfcLeaseComplete(ctx *simulator.Context, req *types.HttpNfcLeaseComplete) soap.HasFault {
	if !l.end() {
		return &methods.HttpNfcLeaseCompleteBody{Fault_: notLive(l)}
	}
	l.State = types.HttpNfcLeaseStateDone
	l.TransferProgress = 100
	return &methods.HttpNfcLeaseCompleteBody{Res: &types.HttpNfcLeaseCompleteResponse{}}
}

func (l *LabLease) HttpNfcLeaseAbort(ctx *simulator.Context, req *types.HttpNfcLeaseAbort) soap.HasFault {
	if !l.end() {
		return &methods.HttpNfcLeaseAbortBody{Fault_: notLive(l)}
	}
	l.lab.stats.nfcAborted.Add(1)
	l.fail(&types.RequestCanceled{}, "The operation was canceled by the client.")
	l.removeImported()
	return &methods.HttpNfcLeaseAbortBody{Res: &types.HttpNfcLeaseAbortResponse{}}
}

// ExportSnapshot leases the snapshot's disks, as frozen (the VM may run).
func (s *LabSnapshot) ExportSnapshot(ctx *simulator.Context, req *types.ExportSnapshot) soap.HasFault {
	if f := s.vm.lab.leaseBlock(s.vm); f != nil {
		return &methods.ExportSnapshotBody{Fault_: simulator.Fault(f.msg, f.fault)}
	}
	l := s.vm.lab.newLease(s.vm, func(d *disk) *layer { return s.tops[d.key] })
	return &methods.ExportSnapshotBody{Res: &types.ExportSnapshotResponse{Returnval: l.Self}}
}

// ExportVm leases the VM's current disks; the VM must be powered off.
func (vm *LabVM) ExportVm(ctx *simulator.Context, req *types.ExportVm) soap.HasFault {
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		return &methods.ExportVmBody{Fault_: simulator.Fault("The attempted operation cannot be performed in the current state (Powered on).",
			&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOff, ExistingState: vm.Runtime.PowerState})}
	}
	if f := vm.lab.leaseBlock(vm); f != nil {
		return &methods.ExportVmBody{Fault_: simulator.Fault(f.msg, f.fault)}
	}
	l := vm.lab.newLease(vm, func(d *disk) *layer { return d.top })
	return &methods.ExportVmBody{Res: &types.ExportVmResponse{Returnval: l.Self}}
}

// serveNFC answers GET /nfc/<lease>/<file>: the disk as a streamOptimized
// VMDK, while the lease is live. No session cookie: the URL is the lease's.
// The stream is generated on the fly, so it has no length and no Range.
func (lab *Lab) serveNFC(w http.ResponseWriter, r *http.Request) {
	upload := r.Method == http.MethodPost || r.Method == http.MethodPut
	if r.Method != http.MethodGet && !upload {
		w.Header().Set("Allow", "GET, POST, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, nfcPrefix), "/")
	lab.leases.mu.Lock()
	var l *LabLease
	if len(parts) == 2 {
		l = lab.leases.byID[parts[0]]
	}
	lab.leases.mu.Unlock()
	if l == nil || !l.isLive() {
		http.Error(w, "no such lease, or the lease has ended", http.StatusNotFound)
		return
	}
	f, ok := l.files[parts[1]]
	if !ok {
		http.Error(w, "no such device in the lease", http.StatusNotFound)
		return
	}
	if upload {
		lab.serveNFCUpload(w, r, l, parts[1], f)
		return
	}
	if l.imported {
		http.Error(w, "lab: the URLs of an import lease take uploads (POST), not GET", http.StatusMethodNotAllowed)
		return
	}
	dir := l.vm.dirName
	defer lab.stats.reads.begin(dir, "nfc/"+parts[1])()
	lab.stats.reads.await(dir, "nfc/"+parts[1])
	if !l.isLive() { // timed out or aborted while the gate held the request
		http.Error(w, "the lease has ended", http.StatusNotFound)
		return
	}
	cw := &countingWriter{ResponseWriter: w, lab: lab, limit: -1, counter: &lab.stats.nfcBytes}
	if rule, ok := lab.faults.take(faultDatastoreRead, dir); ok {
		cw.limit = rule.After
		log.Printf("lab: injected fault: dropping GET %s after %d body bytes", r.URL.Path, rule.After)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := writeStreamVMDK(cw, f.d, f.top, l.isLive); err != nil && !cw.dropped {
		log.Printf("lab: nfc GET %s: %v", r.URL.Path, err)
		cw.drop() // a broken transfer, not a short disk
	}
}

// setLeaseTimeout is POST /nfc/lease-timeout?seconds=S: the timeout of leases made from now on.
func setLeaseTimeout(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	s, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || s <= 0 {
		fail(w, http.StatusBadRequest, "seconds must be a positive integer")
		return
	}
	nfcLeaseTimeout.Store(int64(time.Duration(s) * time.Second))
	reply(w, map[string]int{"seconds": s})
}
