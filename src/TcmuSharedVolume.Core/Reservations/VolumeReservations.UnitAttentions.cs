using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

public sealed partial class VolumeReservations
{
    // ------------------------------------------------------------------ unit attentions

    /// <summary>Pending unit attentions kept per nexus; the oldest is dropped beyond this.</summary>
    public const int MaxUnitAttentionsPerNexus = 8;

    private readonly Lock _uaLock = new();
    private readonly Dictionary<ItNexus, Queue<SenseCode>> _unitAttentions = [];
    private int _unitAttentionCount;

    /// <summary>Takes the oldest pending unit attention for the nexus, if any. An unbound path
    /// (null) has no identity to queue for and gets none.</summary>
    public bool TryTakeUnitAttention(ItNexus? nexus, out SenseCode code)
    {
        code = default;
        if (nexus is null || Volatile.Read(ref _unitAttentionCount) == 0) return false;
        lock (_uaLock)
        {
            if (!_unitAttentions.TryGetValue(nexus, out var queue)) return false;
            code = queue.Dequeue();
            _unitAttentionCount--;
            if (queue.Count == 0) _unitAttentions.Remove(nexus);
            return true;
        }
    }

    /// <summary>Queues a unit attention for every nexus of the volume (e.g. CAPACITY DATA HAS CHANGED):
    /// every bound path and every registrant, but <paramref name="except"/> (the nexus whose own
    /// command made the change, e.g. MODE SELECT, SPC-4 6.11: it knows already).</summary>
    public void AddUnitAttentionForAll(SenseCode code, ItNexus? except = null)
    {
        var targets = new HashSet<ItNexus>(_nexuses());
        foreach (var r in State.Registrations) targets.Add(r.Nexus);
        if (except is not null) targets.Remove(except);
        QueueUnitAttentions(targets.Select(n => (n, code)));
    }

    private void QueueUnitAttentions(IEnumerable<(ItNexus Nexus, SenseCode Code)> items)
    {
        lock (_uaLock)
        {
            foreach (var (nexus, code) in items)
            {
                if (!_unitAttentions.TryGetValue(nexus, out var queue))
                    _unitAttentions[nexus] = queue = new Queue<SenseCode>(2);
                if (queue.Contains(code)) continue; // one pending instance says it all
                if (queue.Count >= MaxUnitAttentionsPerNexus)
                {
                    queue.Dequeue(); // the newest reflects the current state best
                    _unitAttentionCount--;
                }
                queue.Enqueue(code);
                _unitAttentionCount++;
            }
        }
    }

    /// <summary>
    /// A power-on as <paramref name="nexus"/> sees it (SAM-5 unit attention POWER ON, RESET, OR
    /// BUS DEVICE RESET OCCURRED, 29h/00h): queued ahead of anything else pending for it, since a
    /// reset is the condition of highest precedence and tells the initiator that whatever it
    /// knew of the logical unit's state (SPC-2 reservations, unit attentions, mode pages) may
    /// be gone.
    /// </summary>
    public void PowerOnOccurred(ItNexus nexus)
    {
        var powerOn = SenseCode.PowerOnResetOrBusDeviceResetOccurred;
        lock (_uaLock)
        {
            _unitAttentions.TryGetValue(nexus, out var pending);
            var queue = new Queue<SenseCode>(2);
            queue.Enqueue(powerOn);
            int before = pending?.Count ?? 0;
            if (pending is not null)
                foreach (var code in pending)
                    if (code != powerOn && queue.Count < MaxUnitAttentionsPerNexus) queue.Enqueue(code);
            _unitAttentions[nexus] = queue;
            _unitAttentionCount += queue.Count - before;
        }
    }

    // ------------------------------------------------------------------ resets

    /// <summary>LUN RESET from <paramref name="nexus"/>: breaks SPC-2 reservations, keeps persistent ones
    /// (SPC-4 5.12.1: persistent reservations survive every reset).</summary>
    public void LunReset(ItNexus? nexus)
    {
        lock (_prLock)
        {
            var s = _state;
            if (s.Spc2Holder is null) return;
            Log.Info($"reservations: LUN reset by {nexus?.ToString() ?? "unbound path"} releases SPC-2 reservation of {s.Spc2Holder}");
            Publish(new StateBuilder(s) { Spc2Holder = null });
            AuditChange(ReservationAction.Spc2Reset, nexus, s, _state);
        }
    }

    /// <summary>
    /// A reset of the logical unit that arrived on <paramref name="nexus"/>'s path (LOGICAL UNIT
    /// RESET, or a TARGET WARM/COLD RESET reaching this logical unit): SPC-2 reservations are
    /// released (<see cref="LunReset"/>) and every other nexus of the volume gets
    /// <paramref name="unitAttention"/> (SAM-5 logical unit reset: a unit attention for every
    /// I_T nexus). The issuing nexus is left out: its own backstore's LUN reset raises it in
    /// the kernel, and a path is the only way to that nexus.
    /// </summary>
    public void ResetOccurred(ItNexus? nexus, SenseCode unitAttention)
    {
        LunReset(nexus);
        AddUnitAttentionForAll(unitAttention, except: nexus);
    }

    /// <summary>I_T nexus loss: releases an SPC-2 reservation held by the nexus (registrations stay).</summary>
    public void NexusLost(ItNexus nexus)
    {
        lock (_prLock)
        {
            var s = _state;
            if (s.Spc2Holder is null || !s.Spc2Holder.Equals(nexus)) return;
            Publish(new StateBuilder(s) { Spc2Holder = null });
            AuditChange(ReservationAction.Spc2NexusLoss, nexus, s, _state);
        }
    }

    /// <summary>
    /// Call when a path was added or removed: republishes the snapshot so the gate finds the new
    /// path's nexus object by reference (its cheapest lookup). Correct without it, only slower.
    /// </summary>
    public void PathsChanged()
    {
        lock (_prLock)
            Publish(new StateBuilder(_state));
    }
}
