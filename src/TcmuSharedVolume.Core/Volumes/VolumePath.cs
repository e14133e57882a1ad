using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// One path to a volume: one TCMU backstore, hence one I_T nexus (DESIGN.md §2). A path whose
/// nexus could not be resolved has <see cref="Nexus"/> null: it serves I/O as an unregistered
/// initiator and refuses PR OUT.
/// </summary>
public sealed class VolumePath
{
    private long _inFlight;

    public VolumePath(Volume volume, string name, ItNexus? nexus, string? unboundReason = null)
    {
        Volume = volume;
        Name = name;
        Nexus = nexus;
        UnboundReason = nexus is null ? unboundReason ?? "nexus not resolved" : null;
    }

    public Volume Volume { get; }

    /// <summary>The backstore's name in configfs (user_N/NAME).</summary>
    public string Name { get; }

    public ItNexus? Nexus { get; }

    public string? UnboundReason { get; }

    public long InFlight => Interlocked.Read(ref _inFlight);

    internal void BeginCommand() => Interlocked.Increment(ref _inFlight);

    internal void EndCommand() => Interlocked.Decrement(ref _inFlight);
}
