using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// One path to a volume: one TCMU backstore, hence one I_T nexus (docs/architecture.md §3). A path whose
/// nexus could not be resolved has <see cref="Nexus"/> null: it serves I/O as an unregistered
/// initiator and refuses PR OUT.
/// </summary>
public sealed class VolumePath
{
    private long _inFlight;
    private ItNexus? _nexus;
    private string? _unboundReason;

    public VolumePath(Volume volume, string name, ItNexus? nexus, string? unboundReason = null)
    {
        Volume = volume;
        Name = name;
        _nexus = nexus;
        _unboundReason = nexus is null ? unboundReason ?? "nexus not resolved" : null;
    }

    public Volume Volume { get; }

    /// <summary>The backstore's name in configfs (user_N/NAME).</summary>
    public string Name { get; }

    /// <summary>Null until LIO's configuration names exactly one initiator for this backstore:
    /// targetcli creates the backstore before the LUN and ACL that bind it.</summary>
    public ItNexus? Nexus => Volatile.Read(ref _nexus);

    public string? UnboundReason => Volatile.Read(ref _unboundReason);

    /// <summary>Binds the path once its nexus is known. A bound path never changes its nexus in
    /// place (registrations are keyed by it): to serve another nexus it is unbound first.</summary>
    public bool Bind(ItNexus nexus)
    {
        if (Interlocked.CompareExchange(ref _nexus, nexus, null) is { } existing)
            return existing.Equals(nexus);
        Volatile.Write(ref _unboundReason, null);
        Volume.PathsChanged();
        DeliverPowerOn();
        return true;
    }

    /// <summary>
    /// The path can no longer be pinned to one I_T nexus (LIO's configuration changed): from now
    /// on it serves as an unbound path, whose PR OUT is refused. Registrations made through it
    /// stay in the volume's table; they belong to the initiator. Returns false if it was not bound.
    /// </summary>
    public bool Unbind(string reason)
    {
        // The reason first: a reader that sees no nexus finds why.
        Volatile.Write(ref _unboundReason, reason);
        if (Interlocked.Exchange(ref _nexus, null) is null) return false;
        Volume.PathsChanged();
        return true;
    }

    private int _powerOnPending;

    /// <summary>
    /// For a path whose ring already existed when the daemon started (adopted, not created):
    /// to its initiator the daemon's restart is the target's power-on. SPC-2 reservations and
    /// pending unit attentions were held in memory and are gone, so the nexus gets POWER ON,
    /// RESET, OR BUS DEVICE RESET OCCURRED (29h/00h) on its next command, as after a real
    /// power cycle, and re-learns the state. A path not yet bound gets it when it binds.
    /// Not for a freshly created backstore: its initiator has seen nothing to forget.
    /// </summary>
    public void PowerOnOccurred()
    {
        Volatile.Write(ref _powerOnPending, 1);
        DeliverPowerOn();
    }

    /// <summary>Queues the pending power-on unit attention once the nexus is known; exactly once,
    /// whichever of <see cref="PowerOnOccurred"/> and <see cref="Bind"/> runs last.</summary>
    private void DeliverPowerOn()
    {
        if (Nexus is { } nexus && Interlocked.Exchange(ref _powerOnPending, 0) == 1)
            Volume.Reservations.PowerOnOccurred(nexus);
    }

    /// <summary>This path's transport carries at most <paramref name="bytes"/> per command;
    /// lowers the volume's MAXIMUM TRANSFER LENGTH if needed (<see cref="Volume.LimitTransferLength"/>).</summary>
    public bool LimitTransferLength(long bytes) => Volume.LimitTransferLength(this, bytes);

    public void SetUnboundReason(string reason)
    {
        if (Nexus is null) Volatile.Write(ref _unboundReason, reason);
    }

    /// <summary>Commands past the unit attention check that are running now (the queue depth the
    /// metrics report; PREEMPT AND ABORT waits for these).</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>What this path has done, counted by its executor.</summary>
    public PathMetrics Metrics { get; } = new();

    internal void BeginCommand() => Interlocked.Increment(ref _inFlight);

    internal void EndCommand() => Interlocked.Decrement(ref _inFlight);
}
