using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>What the reservation engine needs from the data path for PREEMPT AND ABORT.</summary>
public interface ICommandDrain
{
    /// <summary>Returns true once no command of these nexuses that passed the gate is still
    /// running, false if some still are after <paramref name="timeout"/>.</summary>
    bool DrainCommands(IReadOnlyCollection<ItNexus> nexuses, TimeSpan timeout);
}
