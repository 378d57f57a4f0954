package main

// Virtual disks as real files on the datastore directory, in ESXi layout.
//
// A disk is a linear chain of layers. The base layer is a VMFS "flat" disk: a
// text descriptor (lab-vm-1.vmdk) plus a sparse raw extent (lab-vm-1-flat.vmdk)
// that clients may download through /folder. Each snapshot freezes the running
// layer and pushes a delta on top (lab-vm-1-000001.vmdk). Guest writes only
// ever touch the running (top) layer, so a frozen layer never changes while a
// snapshot still needs it.
//
// Delta extents use a lab-private format on purpose: 64 KiB grains appended in
// allocation order after a 4 KiB header, with the grain table kept in memory.
// Reading one as if it were a flat disk gives garbage, as it would on ESXi,
// so a client that mistakes a delta for a flat extent fails loudly.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

const (
	grainSize       = 64 << 10 // delta grain, allocation unit and CBT block
	fillRegion      = 1 << 20  // granularity of the initial data pattern
	sectorSize      = 512
	deltaHeaderSize = 4096
	zeroGrain       = -1 // delta grain explicitly zeroed (masks the layers below)
)

var zeros = make([]byte, grainSize)

// bitset marks grains of a flat layer that hold data. A clear bit promises
// the grain reads as zeros, which lets "*" queries report holes honestly.
type bitset []uint64

func newBitset(n int64) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) get(i int64) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
func (b bitset) set(i int64)      { b[i/64] |= 1 << (uint(i) % 64) }
func (b bitset) clear(i int64)    { b[i/64] &^= 1 << (uint(i) % 64) }
func (b bitset) grown(n int64) bitset {
	if need := (n + 63) / 64; int64(len(b)) < need {
		return append(b, make(bitset, need-int64(len(b)))...)
	}
	return b
}

// layer is one file pair of a disk chain.
type layer struct {
	name      string // descriptor name without ".vmdk"
	dir       string // host directory
	parent    *layer
	flat      bool
	file      *os.File        // the extent, kept open for the lab's lifetime
	alloc     bitset          // flat only
	grains    map[int64]int64 // delta only: grain -> slot, or zeroGrain
	slots     int64           // delta only: slots used in the extent
	cid       uint32
	contentID string
}

func (l *layer) descriptorName() string { return l.name + ".vmdk" }

func (l *layer) extentName() string {
	if l.flat {
		return l.name + "-flat.vmdk"
	}
	return l.name + "-sesparse.vmdk"
}

func (l *layer) descriptorPath() string { return filepath.Join(l.dir, l.descriptorName()) }
func (l *layer) extentPath() string     { return filepath.Join(l.dir, l.extentName()) }

// destroy closes and deletes the layer's files (after a merge).
func (l *layer) destroy() {
	if l.file != nil {
		_ = l.file.Close()
		l.file = nil
	}
	_ = os.Remove(l.extentPath())
	_ = os.Remove(l.descriptorPath())
}

// readGrain reads p from grain g at offset gOff as seen through l: the
// topmost layer of the chain that holds the grain wins.
func (l *layer) readGrain(g, gOff int64, p []byte) error {
	for x := l; x != nil; x = x.parent {
		if x.flat {
			_, err := x.file.ReadAt(p, g*grainSize+gOff)
			return err
		}
		if s, ok := x.grains[g]; ok {
			if s == zeroGrain {
				copy(p, zeros)
				return nil
			}
			_, err := x.file.ReadAt(p, deltaHeaderSize+s*grainSize+gOff)
			return err
		}
	}
	copy(p, zeros)
	return nil
}

// allocated says whether grain g holds data as seen through l.
func (l *layer) allocated(g int64) bool {
	for x := l; x != nil; x = x.parent {
		if x.flat {
			return x.alloc.get(g)
		}
		if s, ok := x.grains[g]; ok {
			return s != zeroGrain
		}
	}
	return false
}

// disk is one VirtualDisk of a VM.
type disk struct {
	key      int32
	unit     int32
	label    string
	baseName string // "lab-vm-1", "lab-vm-1_1", …
	dir      string // host directory of the VM
	capacity int64
	thin     bool   // thinProvisioned, as the VM's backing reports it
	uuid     string // backing uuid, "6000C29…"
	top      *layer // running point
	cbt      cbt
}

func (d *disk) grains() int64 { return (d.capacity + grainSize - 1) / grainSize }

func (d *disk) grainLen(g int64) int64 {
	if rest := d.capacity - g*grainSize; rest < grainSize {
		return rest
	}
	return grainSize
}

// chain lists the layers from base to l.
func chain(l *layer) []*layer {
	var c []*layer
	for x := l; x != nil; x = x.parent {
		c = append([]*layer{x}, c...)
	}
	return c
}

// createDisk writes a new thin flat disk and fills it with the lab pattern.
func createDisk(dir, vmName string, index int, key int32, capacity int64) (*disk, error) {
	base := vmName
	if index > 0 {
		base = fmt.Sprintf("%s_%d", vmName, index)
	}
	unit := int32(index)
	if unit >= 7 {
		unit++ // unit 7 is the SCSI controller itself
	}
	d, err := newFlatDisk(dir, base, key, unit, fmt.Sprintf("Hard disk %d", index+1), capacity, true, false)
	if err != nil {
		return nil, err
	}
	return d, d.fill(fmt.Sprintf("%s/%d", vmName, key))
}

// newFlatDisk makes an empty (all holes) flat disk base.vmdk + base-flat.vmdk in
// dir. With reuse, files a caller created already (the simulator's empty
// placeholders) are taken over; without it they must not exist.
func newFlatDisk(dir, base string, key, unit int32, label string, capacity int64, thin, reuse bool) (*disk, error) {
	d := &disk{
		key:      key,
		unit:     unit,
		label:    label,
		baseName: base,
		dir:      dir,
		capacity: capacity,
		thin:     thin,
		uuid:     diskUUID(),
	}
	l := &layer{name: base, dir: dir, flat: true, cid: randCID(), contentID: randHex(16), alloc: newBitset(d.grains())}
	flags := os.O_RDWR | os.O_CREATE | os.O_EXCL
	if reuse {
		flags = os.O_RDWR | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(l.extentPath(), flags, 0o600)
	if err != nil {
		return nil, err
	}
	l.file = f
	d.top = l
	if err := f.Truncate(capacity); err != nil {
		l.destroy()
		return nil, err
	}
	if err := d.writeDescriptor(l); err != nil {
		l.destroy()
		return nil, err
	}
	return d, nil
}

// fill writes the deterministic initial pattern: about a quarter of the 1 MiB
// regions random, a few copies of earlier ones (for deduplication), the rest
// left as holes.
func (d *disk) fill(seed string) error {
	h := fnv.New64a()
	_, _ = h.Write([]byte(seed))
	rng := splitmix(h.Sum64())
	buf := make([]byte, fillRegion)
	var sources []int64
	for off := int64(0); off < d.capacity; off += fillRegion {
		n := int64(fillRegion)
		if d.capacity-off < n {
			n = d.capacity - off
		}
		r := rng.next() % 100
		switch {
		case r < 25:
			rng.fill(buf[:n])
			sources = append(sources, off)
		case r < 30 && len(sources) > 0:
			src := sources[rng.next()%uint64(len(sources))]
			if _, err := d.top.file.ReadAt(buf[:n], src); err != nil {
				return err
			}
		default:
			continue
		}
		if err := d.write(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// descriptor renders the layer's text descriptor the way ESXi writes it.
func (d *disk) descriptor(l *layer) string {
	sectors := d.capacity / sectorSize
	var b strings.Builder
	b.WriteString("# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\n")
	fmt.Fprintf(&b, "CID=%08x\n", l.cid)
	if l.parent == nil {
		b.WriteString("parentCID=ffffffff\n")
	} else {
		fmt.Fprintf(&b, "parentCID=%08x\n", l.parent.cid)
	}
	if l.flat {
		b.WriteString("createType=\"vmfs\"\n")
	} else {
		b.WriteString("createType=\"seSparse\"\n")
		fmt.Fprintf(&b, "parentFileNameHint=\"%s\"\n", l.parent.descriptorName())
	}
	b.WriteString("\n# Extent description\n")
	kind := "VMFS"
	if !l.flat {
		kind = "SESPARSE"
	}
	extent := l.extentName()
	if vsanDatastore { // the extent is a vSAN object, not a file (vsan.go)
		kind, extent = vsanExtent(l)
	}
	fmt.Fprintf(&b, "RW %d %s \"%s\"\n", sectors, kind, extent)
	b.WriteString("\n# The Disk Data Base\n#DDB\n\n")
	fmt.Fprintf(&b, "ddb.adapterType = \"lsilogic\"\n")
	if l.flat {
		cyl := sectors / (255 * 63)
		fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\n", cyl)
		b.WriteString("ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n")
	} else {
		fmt.Fprintf(&b, "ddb.grain = \"%d\"\n", grainSize/sectorSize)
	}
	fmt.Fprintf(&b, "ddb.longContentID = \"%s\"\n", l.contentID)
	if l.flat && d.thin {
		b.WriteString("ddb.thinProvisioned = \"1\"\n")
	}
	fmt.Fprintf(&b, "ddb.uuid = \"%s\"\n", spacedUUID(d.uuid))
	b.WriteString("ddb.virtualHWVersion = \"13\"\n")
	return b.String()
}

func (d *disk) writeDescriptor(l *layer) error {
	return os.WriteFile(l.descriptorPath(), []byte(d.descriptor(l)), 0o600)
}

// pushDelta freezes the running layer and puts a new, empty delta on top.
func (d *disk) pushDelta() (*layer, error) {
	l := &layer{name: d.nextDeltaName(), dir: d.dir, parent: d.top, grains: map[int64]int64{}, cid: randCID(), contentID: randHex(16)}
	f, err := os.OpenFile(l.extentPath(), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	l.file = f
	header := make([]byte, deltaHeaderSize)
	copy(header, fmt.Sprintf("VMBKP-LAB-DELTA 1\nNot SESparse: a vmbkp lab delta extent. %d-byte grains follow this %d-byte header in allocation order; the grain table is kept in the lab's memory.\n", grainSize, deltaHeaderSize))
	if _, err := f.WriteAt(header, 0); err == nil {
		err = d.writeDescriptor(l)
	}
	if err != nil {
		l.destroy()
		return nil, err
	}
	d.top = l
	return l, nil
}

// nextDeltaName picks the lowest free -00000N name, as ESXi does.
func (d *disk) nextDeltaName() string {
	used := map[string]bool{}
	for _, l := range chain(d.top) {
		used[l.name] = true
	}
	for n := 1; ; n++ {
		name := fmt.Sprintf("%s-%06d", d.baseName, n)
		if used[name] {
			continue
		}
		if _, err := os.Stat(filepath.Join(d.dir, name+".vmdk")); err == nil {
			continue
		}
		return name
	}
}

// pieces splits [off, off+n) into per-grain parts.
func pieces(off, n int64, f func(g, gOff, n int64) error) error {
	for n > 0 {
		g := off / grainSize
		gOff := off - g*grainSize
		k := grainSize - gOff
		if k > n {
			k = n
		}
		if err := f(g, gOff, k); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

func (d *disk) checkRange(off, n int64) error {
	if off < 0 || n < 0 || off+n > d.capacity {
		return fmt.Errorf("range %d+%d is outside the disk (capacity %d)", off, n, d.capacity)
	}
	return nil
}

// write is a guest write at the running point. CBT is recorded by the caller.
func (d *disk) write(p []byte, off int64) error {
	if err := d.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	top := d.top
	if top.flat {
		if _, err := top.file.WriteAt(p, off); err != nil {
			return err
		}
		return pieces(off, int64(len(p)), func(g, _, _ int64) error { top.alloc.set(g); return nil })
	}
	return pieces(off, int64(len(p)), func(g, gOff, n int64) error {
		err := d.writeDeltaGrain(top, g, gOff, p[:n])
		p = p[n:]
		return err
	})
}

// writeDeltaGrain copies a grain up from the layers below on its first
// partial write (copy-on-write), then updates it in place.
func (d *disk) writeDeltaGrain(l *layer, g, gOff int64, p []byte) error {
	s, ok := l.grains[g]
	if ok && s != zeroGrain {
		_, err := l.file.WriteAt(p, deltaHeaderSize+s*grainSize+gOff)
		return err
	}
	gLen := d.grainLen(g)
	buf := make([]byte, gLen)
	if !ok && (gOff != 0 || int64(len(p)) != gLen) {
		if err := l.parent.readGrain(g, 0, buf); err != nil {
			return err
		}
	}
	copy(buf[gOff:], p)
	slot := l.slots
	if _, err := l.file.WriteAt(buf, deltaHeaderSize+slot*grainSize); err != nil {
		return err
	}
	l.slots++
	l.grains[g] = slot
	return nil
}

// zero is a guest write of zeros (think UNMAP/WRITE SAME): whole grains
// become holes in a flat layer or zero markers in a delta.
func (d *disk) zero(off, n int64) error {
	if err := d.checkRange(off, n); err != nil {
		return err
	}
	top := d.top
	return pieces(off, n, func(g, gOff, k int64) error {
		whole := gOff == 0 && k == d.grainLen(g)
		switch {
		case top.flat && whole:
			top.alloc.clear(g)
			return punchHole(top.file, g*grainSize, k)
		case top.flat:
			if !top.alloc.get(g) {
				return nil // already zeros
			}
			_, err := top.file.WriteAt(zeros[:k], g*grainSize+gOff)
			return err
		case whole:
			top.grains[g] = zeroGrain
			return nil
		default:
			return d.writeDeltaGrain(top, g, gOff, zeros[:k])
		}
	})
}

// readView reads p at off of the disk as seen through top (the running point
// or a snapshot's frozen layer).
func (d *disk) readView(top *layer, p []byte, off int64) error {
	if err := d.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	return pieces(off, int64(len(p)), func(g, gOff, n int64) error {
		err := top.readGrain(g, gOff, p[:n])
		p = p[n:]
		return err
	})
}

// hashView returns the SHA-256 of the whole view through top.
func (d *disk) hashView(top *layer) (string, error) {
	h := sha256.New()
	buf := make([]byte, fillRegion)
	for off := int64(0); off < d.capacity; off += fillRegion {
		n := int64(fillRegion)
		if d.capacity-off < n {
			n = d.capacity - off
		}
		if err := d.readView(top, buf[:n], off); err != nil {
			return "", err
		}
		h.Write(buf[:n])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// mergeInto folds child into its parent, after which the parent shows what
// the child showed. This is snapshot consolidation.
func (d *disk) mergeInto(child, parent *layer) error {
	keys := make([]int64, 0, len(child.grains))
	for g := range child.grains {
		keys = append(keys, g)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	buf := make([]byte, grainSize)
	for _, g := range keys {
		s := child.grains[g]
		gLen := d.grainLen(g)
		if s == zeroGrain {
			if parent.flat {
				parent.alloc.clear(g)
				if err := punchHole(parent.file, g*grainSize, gLen); err != nil {
					return err
				}
			} else {
				parent.grains[g] = zeroGrain
			}
			continue
		}
		if _, err := child.file.ReadAt(buf[:gLen], deltaHeaderSize+s*grainSize); err != nil {
			return err
		}
		if parent.flat {
			if _, err := parent.file.WriteAt(buf[:gLen], g*grainSize); err != nil {
				return err
			}
			parent.alloc.set(g)
			continue
		}
		ps, ok := parent.grains[g]
		if !ok || ps == zeroGrain {
			ps = parent.slots
			parent.slots++
			parent.grains[g] = ps
		}
		if _, err := parent.file.WriteAt(buf[:gLen], deltaHeaderSize+ps*grainSize); err != nil {
			return err
		}
	}
	parent.cid = randCID() // content changed, as ESXi would note
	return nil
}

// grow extends a disk without snapshots.
func (d *disk) grow(capacity int64) error {
	if !d.top.flat {
		return errors.New("disk has snapshots")
	}
	if err := d.top.file.Truncate(capacity); err != nil {
		return err
	}
	d.capacity = capacity
	d.top.alloc = d.top.alloc.grown(d.grains())
	return d.writeDescriptor(d.top)
}

// viewReader serves a view through io.ReaderAt; resolve is called for every
// read under the VM lock so a view that disappears (snapshot removed) fails
// instead of returning changed bytes.
type viewReader struct {
	vm      *LabVM
	d       *disk
	resolve func() (*layer, error)
}

func (v *viewReader) ReadAt(p []byte, off int64) (int, error) {
	v.vm.Lock()
	defer v.vm.Unlock()
	top, err := v.resolve()
	if err != nil {
		return 0, err
	}
	n := int64(len(p))
	if off >= v.d.capacity {
		return 0, io.EOF
	}
	if off+n > v.d.capacity {
		n = v.d.capacity - off
	}
	if err := v.d.readView(top, p[:n], off); err != nil {
		return 0, err
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// punchHole deallocates a range (falling back to writing zeros).
func punchHole(f *os.File, off, n int64) error {
	const keepSize, punch = 0x1, 0x2
	if err := syscall.Fallocate(int(f.Fd()), keepSize|punch, off, n); err == nil {
		return nil
	}
	for n > 0 {
		k := n
		if k > grainSize {
			k = grainSize
		}
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// splitmix is a tiny deterministic PRNG, so the initial disk contents do not
// depend on math/rand's implementation.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *splitmix) fill(p []byte) {
	var b [8]byte
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(b[:], s.next())
		copy(p[i:], b[:])
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func randCID() uint32 {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return binary.BigEndian.Uint32(b)
}

// diskUUID makes a backing uuid like vSphere's "6000C29b-7a4e-c44f-1f5b-9d1c4dbbd6d4".
func diskUUID() string {
	h := "6000C29" + randHex(13)[:25]
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// randomUUID makes a random RFC 4122 UUID, "5003a1b2-…", as vCenter's instance UUIDs are.
func randomUUID() string {
	h := []byte(randHex(16))
	h[12] = '4'
	h[16] = "89ab"[h[16]%4]
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// spacedUUID turns "6000C29…" into the descriptor's "60 00 c2 9…" form.
func spacedUUID(u string) string {
	u = strings.ToLower(strings.ReplaceAll(u, "-", ""))
	var parts []string
	for i := 0; i+2 <= len(u); i += 2 {
		parts = append(parts, u[i:i+2])
	}
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ")
}

// upload stores one grain of a whole-file upload (a PUT of the flat extent
// under /folder) at grain-aligned off: zeros become a hole, so an uploaded
// disk stays as sparse as its data. The disk must have no snapshots.
func (d *disk) upload(p []byte, off int64) error {
	top := d.top
	if !top.flat {
		return errors.New("the disk has snapshots")
	}
	if off%grainSize != 0 || int64(len(p)) > grainSize {
		return fmt.Errorf("upload piece %d+%d is not one grain", off, len(p))
	}
	if err := d.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	g := off / grainSize
	if allZero(p) {
		if !top.alloc.get(g) {
			return nil
		}
		top.alloc.clear(g)
		return punchHole(top.file, off, int64(len(p)))
	}
	if _, err := top.file.WriteAt(p, off); err != nil {
		return err
	}
	top.alloc.set(g)
	return nil
}

func allZero(p []byte) bool {
	for len(p) > 0 {
		n := len(p)
		if n > len(zeros) {
			n = len(zeros)
		}
		if !bytes.Equal(p[:n], zeros[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
