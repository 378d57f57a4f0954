package main

// Changed Block Tracking.
//
// A changeId "52 a1 … 7f/17" names a point in a disk's write history: the
// prefix identifies one tracking session (it changes whenever CBT is reset:
// disabled/enabled or disk resized), the number is the sequence of the last
// guest write before that point. Every guest write gets the next sequence
// number and is logged, aligned outward to 64 KiB. "Changed between A and
// snapshot S" is then the union of the logged writes with A < seq <= S.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type cbtWrite struct {
	seq        uint64
	start, end int64 // 64 KiB aligned, end clipped to the capacity
}

type cbt struct {
	prefix  string // "" while change tracking is off
	seq     uint64 // sequence number of the last recorded write
	current string // changeId shown in the VM's current disk backing
	log     []cbtWrite
	issued  map[uint64]bool // sequence numbers handed out in a changeId
	// partial: the session started while the disk ran on a delta (the VM had
	// snapshots). ESXi pre-fills a new tracking file with the allocated blocks
	// of the disk it starts on, so only the running delta's are known, never
	// the data in the layers below it: "*" then answers known grains only.
	partial bool
	known   bitset // partial only: grains the session knows hold data
}

func (c *cbt) enabled() bool { return c.prefix != "" }

// reset starts a new tracking session (on) or stops tracking (off). Either
// way every changeId handed out before becomes unknown.
func (c *cbt) reset(on bool) {
	c.seq, c.log, c.issued = 0, nil, map[uint64]bool{}
	c.prefix, c.current = "", ""
	c.partial, c.known = false, nil
	if on {
		c.prefix = newChangePrefix()
		c.current = c.issue()
	}
}

// issue hands out the changeId of the current point.
func (c *cbt) issue() string {
	if !c.enabled() {
		return ""
	}
	c.issued[c.seq] = true
	return fmt.Sprintf("%s/%d", c.prefix, c.seq)
}

// rewind returns the session to sequence seq, for a revert to a snapshot
// taken there: the writes after it are forgotten with the branch they were
// on and the next write reuses seq+1. ChangeIds handed out on that branch
// stay accepted and now name points of another history: the worst case of
// VMware's KB "Reverting to a pre-existing snapshot under specific conditions
// can cause incremental backups based on CBT to become inconsistent".
func (c *cbt) rewind(seq uint64) {
	var kept []cbtWrite
	for _, w := range c.log {
		if w.seq <= seq {
			kept = append(kept, w)
		}
	}
	c.log, c.seq = kept, seq
	c.current = c.issue()
}

func (c *cbt) record(off, n, capacity int64) {
	if !c.enabled() || n <= 0 {
		return
	}
	c.seq++
	end := (off + n + grainSize - 1) / grainSize * grainSize
	if end > capacity {
		end = capacity
	}
	c.log = append(c.log, cbtWrite{seq: c.seq, start: off / grainSize * grainSize, end: end})
	if c.partial {
		for g := off / grainSize; g*grainSize < end; g++ {
			c.known.set(g)
		}
	}
}

// startTracking starts a new session (on) or stops tracking (off) for a disk
// whose running layer at that moment is running. Started on a delta (the VM
// has snapshots), the session is partial: VMware requires zero snapshots when
// CBT is enabled "for a clean start" (KB 1020128).
func (d *disk) startTracking(on bool, running *layer) {
	d.cbt.reset(on)
	if !on || running.flat {
		return
	}
	d.cbt.partial = true
	d.cbt.known = newBitset(d.grains())
	for g, s := range running.grains {
		if s != zeroGrain {
			d.cbt.known.set(g)
		}
	}
}

// parseChangeID splits "prefix/seq".
func parseChangeID(id string) (string, uint64, *soap.Fault) {
	i := strings.LastIndex(id, "/")
	if i > 0 {
		if seq, err := strconv.ParseUint(id[i+1:], 10, 64); err == nil {
			return id[:i], seq, nil
		}
	}
	return "", 0, simulator.Fault(fmt.Sprintf("malformed changeId [%s]", id), &types.InvalidArgument{InvalidProperty: "changeId"})
}

// point resolves a changeId of the current session to its sequence number;
// what is wrong otherwise is worded by the caller.
func (c *cbt) point(id string) (seq uint64, reset bool, unknown bool, fault *soap.Fault) {
	prefix, seq, fault := parseChangeID(id)
	switch {
	case fault != nil:
	case prefix != c.prefix:
		reset = true
	case !c.issued[seq]:
		unknown = true
	}
	return seq, reset, unknown, fault
}

// changed lists the areas written with from < seq <= to, within [start, end).
func (c *cbt) changed(from, to uint64, start, end int64) []types.DiskChangeExtent {
	first := start / grainSize
	marks := make([]bool, (end+grainSize-1)/grainSize-first)
	for _, w := range c.log {
		if w.seq <= from || w.seq > to || w.end <= start || w.start >= end {
			continue
		}
		for b := w.start / grainSize; b*grainSize < w.end; b++ {
			if i := b - first; i >= 0 && i < int64(len(marks)) {
				marks[i] = true
			}
		}
	}
	return areas(start, end, func(g int64) bool { return marks[g-first] })
}

// allocatedAreas lists the grains holding data in the view through top.
func allocatedAreas(top *layer, start, end int64) []types.DiskChangeExtent {
	return areas(start, end, top.allocated)
}

// areas merges consecutive marked grains into extents clipped to [start, end).
func areas(start, end int64, marked func(g int64) bool) []types.DiskChangeExtent {
	var out []types.DiskChangeExtent
	for g := start / grainSize; g*grainSize < end; g++ {
		if !marked(g) {
			continue
		}
		s, e := g*grainSize, (g+1)*grainSize
		if s < start {
			s = start
		}
		if e > end {
			e = end
		}
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length == s {
			out[n-1].Length += e - s
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: s, Length: e - s})
	}
	return out
}

// newChangePrefix makes a per-session id in vSphere's spaced-hex style.
func newChangePrefix() string {
	h := "52" + randHex(15)
	var parts []string
	for i := 0; i < 32; i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ")
}

// QueryChangedDiskAreas answers one page of changed (or, for "*", allocated)
// areas; clients loop until startOffset+length reaches the capacity.
func (vm *LabVM) QueryChangedDiskAreas(ctx *simulator.Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	body := &methods.QueryChangedDiskAreasBody{}
	vm.lab.stats.queryChanged.Add(1)
	info, fault := vm.queryChanged(req)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	body.Res = &types.QueryChangedDiskAreasResponse{Returnval: *info}
	return body
}

func (vm *LabVM) queryChanged(req *types.QueryChangedDiskAreas) (*types.DiskChangeInfo, *soap.Fault) {
	if _, ok := vm.lab.faults.take(faultQueryChanged, vm.Name); ok {
		return nil, simulator.Fault(injected("QueryChangedDiskAreas"), &types.FileFault{File: vm.dsPath(vm.Name + "-ctk.vmdk")})
	}
	d := vm.disk(req.DeviceKey)
	if d == nil {
		return nil, simulator.Fault(fmt.Sprintf("%s has no virtual disk with key %d", vm.Name, req.DeviceKey), &types.InvalidArgument{InvalidProperty: "deviceKey"})
	}
	ctk := &types.FileFault{File: vm.dsPath(d.baseName + "-ctk.vmdk")}
	if !vm.cbtOn {
		return nil, simulator.Fault(fmt.Sprintf("change tracking is not enabled on %s", vm.Name), ctk)
	}

	top, to, toID := d.top, d.cbt.seq, ""
	if req.Snapshot == nil {
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
			return nil, simulator.Fault("a snapshot is required to query changes of a VM that is not powered off", &types.InvalidArgument{InvalidProperty: "snapshot"})
		}
	} else {
		s := vm.snapshot(*req.Snapshot)
		if s == nil {
			return nil, simulator.Fault(fmt.Sprintf("%s is not a snapshot of %s", req.Snapshot.Value, vm.Name), &types.InvalidArgument{InvalidProperty: "snapshot"})
		}
		top, toID = s.tops[d.key], s.changeIDs[d.key]
		if toID == "" {
			return nil, simulator.Fault(fmt.Sprintf("snapshot %s was taken while change tracking was off", s.name), ctk)
		}
	}

	if req.StartOffset < 0 || req.StartOffset >= d.capacity {
		return nil, simulator.Fault(fmt.Sprintf("startOffset %d is outside the disk (capacity %d)", req.StartOffset, d.capacity), &types.InvalidArgument{InvalidProperty: "startOffset"})
	}
	end := req.StartOffset + vm.lab.cbtPage
	if end > d.capacity {
		end = d.capacity
	}
	info := &types.DiskChangeInfo{StartOffset: req.StartOffset, Length: end - req.StartOffset}

	if req.ChangeId == "*" {
		if d.cbt.partial {
			// The data in the layers below where tracking started is unknown to it.
			info.ChangedArea = areas(req.StartOffset, end, func(g int64) bool { return d.cbt.known.get(g) && top.allocated(g) })
			return info, nil
		}
		info.ChangedArea = allocatedAreas(top, req.StartOffset, end)
		return info, nil
	}

	if toID != "" {
		seq, reset, unknown, fault := d.cbt.point(toID)
		switch {
		case fault != nil:
			return nil, fault
		case reset || unknown:
			return nil, simulator.Fault(fmt.Sprintf("snapshot changeId %s belongs to an earlier change tracking session of disk %d (CBT was reset)", toID, d.key), ctk)
		}
		to = seq
	}
	from, reset, unknown, fault := d.cbt.point(req.ChangeId)
	switch {
	case fault != nil:
		return nil, fault
	case reset:
		return nil, simulator.Fault(fmt.Sprintf("changeId %s does not belong to the current change tracking session of disk %d (CBT was reset)", req.ChangeId, d.key), ctk)
	case unknown:
		return nil, simulator.Fault(fmt.Sprintf("unknown changeId %s for disk %d", req.ChangeId, d.key), ctk)
	case from > to:
		return nil, simulator.Fault(fmt.Sprintf("changeId %s is newer than the snapshot", req.ChangeId), &types.InvalidArgument{InvalidProperty: "changeId"})
	}
	info.ChangedArea = d.cbt.changed(from, to, req.StartOffset, end)
	return info, nil
}
