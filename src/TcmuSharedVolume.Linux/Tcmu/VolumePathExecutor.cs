using System.Diagnostics;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>
/// Runs the commands of one path's ring: the volume's D_SENSE setting, then the command set,
/// then the path's counters (<see cref="Diagnostics.PathMetrics"/>: the time in the daemon, status, bytes).
/// The daemon and the end-to-end tests use this same class, so the tests exercise what ships.
/// </summary>
/// <param name="path">The path (one backstore, one I_T nexus) whose ring this executor serves.</param>
/// <param name="tryBind">Called before a reservation command on a path whose nexus is not yet
/// known (targetcli creates the backstore before the LUN and ACL that bind it), so that the first
/// PR OUT after the ACL appears does not fail. Any thread; should be cheap when it has nothing to do.</param>
/// <param name="checkNexus">Called with the holder of an SPC-2 reservation before another nexus's
/// command is judged against it: the holder may have logged out a moment ago, and a logout ends
/// its reservation (SPC-2 5.5.1) although TCMU never reports it. The callee re-reads the holder's
/// session and releases the reservation if it ended. Any thread; off the path of commands that
/// meet no SPC-2 reservation. Also called with this path's own nexus before its RESERVE(6/10).</param>
public sealed class VolumePathExecutor(VolumePath path, Action? tryBind = null, Action<ItNexus>? checkNexus = null) : ICommandExecutor
{
    public VolumePath Path => path;

    public bool Execute(ScsiCommand command)
    {
        if (tryBind is not null && path.Nexus is null && command.CdbLength > 0
            && OperationCode.IsReservationCommand(command.OperationCode))
            tryBind();
        if (checkNexus is not null && command.CdbLength > 0)
        {
            // A RESERVE first settles this nexus's own session: the reservation it takes belongs
            // to the session it arrives on, not to one that ended unseen before it.
            if (path.Nexus is { } own && command.OperationCode is OperationCode.Reserve6 or OperationCode.Reserve10)
                checkNexus(own);
            if (path.Volume.Reservations.Spc2Holder is { } holder && !holder.Equals(path.Nexus))
                checkNexus(holder);
        }
        command.DescriptorSense = path.Volume.DescriptorSense;
        long start = Stopwatch.GetTimestamp();
        command.ReceivedTimestamp = start;
        // Finished later on the store's thread, which records it there (AsyncTransfer).
        if (!CommandSet.Execute(path, command)) return false;
        path.Metrics.Record(command, Stopwatch.GetTimestamp() - start);
        return true;
    }

    public void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds)
    {
        // A reset releases SPC-2 reservations (SPC-2 5.5.1); persistent reservations survive it
        // (SPC-4 5.12.1). The kernel raises the reset's unit attention only for the nexus of this
        // path's own backstore; the volume's other paths are other backstores, so their nexuses
        // hear of it here (SAM-5 logical unit reset: a unit attention for every I_T nexus).
        switch (type)
        {
            case TmrType.LunReset:
                path.Volume.Reservations.ResetOccurred(path.Nexus, SenseCode.BusDeviceResetFunctionOccurred);
                break;
            case TmrType.TargetWarmReset or TmrType.TargetColdReset:
                // A target reset is a logical unit reset of every logical unit of the target
                // (SAM-3 TARGET RESET), this volume's included: reported as a reset occurred.
                path.Volume.Reservations.ResetOccurred(path.Nexus, SenseCode.PowerOnResetOrBusDeviceResetOccurred);
                break;
        }
    }
}
