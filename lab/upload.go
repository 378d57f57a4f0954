package main

// Uploads: PUT under /folder, as vCenter's datastore file access takes
// them. A PUT replaces a whole file. The flat extent of a lab disk is
// written through the disk (zero grains become holes, so an uploaded disk
// stays sparse; CBT neither records nor notices it, the worst case); the
// disk's VM must be powered off and the disk must have no snapshots. Any other file is written beside and renamed into place.

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

// diskFile finds the lab disk that owns a host path, and whether the path
// is that disk's running flat extent (the only disk file a PUT may replace).
func (lab *Lab) diskFile(hostPath string) (*LabVM, *disk, bool) {
	for _, vm := range lab.allVMs() {
		vm.Lock()
		for _, d := range vm.disks {
			for l := range vm.layers(d) {
				if l.extentPath() == hostPath || l.descriptorPath() == hostPath {
					writable := l == d.top && l.flat && l.extentPath() == hostPath
					vm.Unlock()
					return vm, d, writable
				}
			}
		}
		vm.Unlock()
	}
	return nil, nil, false
}

// putFolder handles PUT /folder/<rel>; the caller checked the datastore and the session.
// A refused upload is answered once its whole body has arrived (the rest is read and
// dropped), so the client always gets the answer rather than a reset connection.
func (lab *Lab) putFolder(w http.ResponseWriter, r *http.Request, rel string) {
	hostPath := filepath.Join(lab.dsDir, filepath.FromSlash(rel))
	owner := strings.SplitN(strings.TrimPrefix(rel, "/"), "/", 2)[0]
	defer lab.stats.writes.begin(owner, rel)()
	lab.stats.writes.await(owner, rel)
	limit := int64(-1)
	if rule, ok := lab.faults.takeIf(faultDatastoreFull, owner, func(r faultRule) bool { return r.During == duringWrite }); ok {
		limit = rule.After
		log.Printf("lab: injected fault: datastore full for PUT %s after %d bytes", rel, limit)
	}
	vm, d, writable := lab.diskFile(hostPath)
	switch {
	case d != nil && !writable:
		uploadFail(w, r, http.StatusInternalServerError, "lab: %s belongs to a disk chain of VM %s and cannot be replaced (only the running flat extent of a disk without snapshots can)", rel, vm.Name)
	case d != nil:
		flip := int64(-1)
		if rule, ok := lab.faults.take(faultDatastoreFlip, owner); ok {
			flip = rule.After
			log.Printf("lab: injected fault: PUT %s stores the byte at %d flipped", rel, flip)
		}
		lab.putDisk(w, r, rel, vm, d, limit, flip)
	default:
		lab.putFile(w, r, rel, hostPath, limit)
	}
}

func uploadFail(w http.ResponseWriter, r *http.Request, code int, format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	log.Printf("lab: PUT refused: %s", msg)
	_, _ = io.Copy(io.Discard, r.Body)
	http.Error(w, msg, code)
}

func (lab *Lab) noSpace(w http.ResponseWriter, r *http.Request) {
	uploadFail(w, r, http.StatusInternalServerError, "Insufficient disk space on datastore '%s'.", lab.dsName)
}

func (lab *Lab) putDisk(w http.ResponseWriter, r *http.Request, rel string, vm *LabVM, d *disk, limit, flip int64) {
	vm.Lock()
	on := vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	capacity := d.capacity
	vm.Unlock()
	if on {
		uploadFail(w, r, http.StatusInternalServerError, "Cannot open file %s: VM %s is powered on (Failed to lock the file)", rel, vm.Name)
		return
	}
	if r.ContentLength != capacity {
		uploadFail(w, r, http.StatusBadRequest, "lab: a PUT of %s replaces the whole extent: Content-Length must be the disk's capacity %d (got %d)", rel, capacity, r.ContentLength)
		return
	}
	buf := make([]byte, grainSize)
	for off := int64(0); off < capacity; off += grainSize {
		n := capacity - off
		if n > grainSize {
			n = grainSize
		}
		if limit >= 0 && off+n > limit {
			lab.noSpace(w, r)
			return
		}
		if _, err := io.ReadFull(r.Body, buf[:n]); err != nil {
			uploadFail(w, r, http.StatusBadRequest, "lab: reading the body of PUT %s at offset %d: %v", rel, off, err)
			return
		}
		if flip >= off && flip < off+n {
			buf[flip-off] ^= 0xff // silent corruption: only reading back finds it
		}
		vm.Lock()
		err := error(nil)
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			err = fmt.Errorf("VM %s was powered on during the upload", vm.Name)
		} else {
			err = d.upload(buf[:n], off)
		}
		vm.Unlock()
		if err != nil {
			uploadFail(w, r, http.StatusInternalServerError, "lab: writing %s at offset %d: %v", rel, off, err)
			return
		}
		lab.stats.folderPut.Add(n)
	}
	vm.Lock()
	d.top.cid = randCID() // the content changed
	_ = d.writeDescriptor(d.top)
	// CBT is left as it was: nothing says ESXi notices a write that bypasses the VM, so the
	// worst case is modelled — the upload is not tracked and old changeIds stay valid.
	vm.publish()
	vm.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (lab *Lab) putFile(w http.ResponseWriter, r *http.Request, rel, hostPath string, limit int64) {
	if st, err := os.Stat(hostPath); err == nil && st.IsDir() {
		uploadFail(w, r, http.StatusBadRequest, "lab: %s is a directory", rel)
		return
	}
	existed := false
	if _, err := os.Stat(hostPath); err == nil {
		existed = true
	}
	if err := os.MkdirAll(filepath.Dir(hostPath), 0o700); err != nil {
		uploadFail(w, r, http.StatusInternalServerError, "lab: %v", err)
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(hostPath), ".upload-*")
	if err != nil {
		uploadFail(w, r, http.StatusInternalServerError, "lab: %v", err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	body := io.Reader(r.Body)
	if limit >= 0 {
		body = io.LimitReader(r.Body, limit)
	}
	n, err := io.Copy(tmp, body)
	lab.stats.folderPut.Add(n)
	if err != nil {
		uploadFail(w, r, http.StatusBadRequest, "lab: reading the body of PUT %s: %v", rel, err)
		return
	}
	if limit >= 0 {
		if extra, _ := r.Body.Read(make([]byte, 1)); extra > 0 {
			lab.noSpace(w, r)
			return
		}
	}
	if err := tmp.Close(); err == nil {
		err = os.Rename(tmp.Name(), hostPath)
	}
	if err != nil {
		uploadFail(w, r, http.StatusInternalServerError, "lab: storing %s: %v", rel, err)
		return
	}
	if existed {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}
