using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// Where every command of every path starts: unit attentions, then reservations, then the
/// command's handler in <see cref="CommandTable"/> (SPC primary or SBC block commands). Runs on
/// a worker thread; allocates nothing.
/// </summary>
public static class CommandSet
{
    /// <summary>Race tests only: runs after a command passed the reservation gate and before it
    /// executes, to hold it in the window PREEMPT AND ABORT must account for. Null in production.</summary>
    internal static Action<VolumePath>? GatePassedForTests;

    /// <summary>
    /// Runs the command. True: it is finished (status and sense set). False: a READ or WRITE
    /// went to a store that completes it on its own thread, which finishes it through the
    /// command's <see cref="ScsiCommand.Completion"/> (only when the transport set one); the
    /// command is the transport's again, maybe already, so the caller must not touch it.
    /// </summary>
    public static bool Execute(VolumePath path, ScsiCommand command)
    {
        var volume = path.Volume;
        var reservations = volume.Reservations;
        var cdb = command.Cdb;
        if (cdb.Length == 0)
        {
            command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
            return true;
        }

        ref readonly var route = ref CommandTable.RouteOf(cdb[0]);

        // SAM-5 5.14: a pending unit attention is reported on the next command, except on
        // INQUIRY, REPORT LUNS and REQUEST SENSE.
        if ((route.Flags & CommandFlags.NoUnitAttention) == 0
            && reservations.TryTakeUnitAttention(path.Nexus, out var ua))
        {
            command.CheckCondition(ua);
            return true;
        }

        // The reservation engine judges its own commands: no gate, not counted.
        if ((route.Flags & CommandFlags.ReservationCommand) != 0)
        {
            CommandTable.Run(route, path, command);
            return true;
        }

        // Counted before the gate, never after: PREEMPT AND ABORT publishes the new table and
        // then reads these counters, so a command either sees the new table here or is counted
        // there and waited for. Checking first would let a write pass the old table, be missed
        // by the drain, and land after the preemptor was told GOOD. The increment is a full
        // fence, which orders it before the table is read (the drain's side is in
        // Volume.DrainCommands).
        path.BeginCommand();
        bool later = false;
        try
        {
            if (!reservations.IsAllowed(path.Nexus, cdb))
            {
                command.ReservationConflict();
                return true;
            }
            GatePassedForTests?.Invoke(path);
            CommandTable.Run(route, path, command);
            // A transfer for a store that completes on its own thread: it stays counted until
            // the store's completion ends it, so the drain waits for it there.
            if (command.Deferred.IsSet) later = AsyncTransfer.Start(path, command);
        }
        finally
        {
            if (!later) path.EndCommand();
        }
        return !later;
    }
}
