using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// Where every command of every path starts: unit attentions, then reservations, then the
/// primary (SPC) or block (SBC) command set. Runs on a worker thread; allocates nothing.
/// </summary>
public static class CommandSet
{
    public static void Execute(VolumePath path, ScsiCommand command)
    {
        var volume = path.Volume;
        var reservations = volume.Reservations;
        var cdb = command.Cdb;
        if (cdb.Length == 0)
        {
            command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
            return;
        }

        byte op = cdb[0];

        // SAM-5 5.14: a pending unit attention is reported on the next command, except on
        // INQUIRY, REPORT LUNS and REQUEST SENSE.
        if (op is not (OperationCode.Inquiry or OperationCode.ReportLuns or OperationCode.RequestSense)
            && reservations.TryTakeUnitAttention(path.Nexus, out var ua))
        {
            command.CheckCondition(ua);
            return;
        }

        if (OperationCode.IsReservationCommand(op))
        {
            reservations.Execute(path.Nexus, command);
            return;
        }

        if (!reservations.IsAllowed(path.Nexus, cdb))
        {
            command.ReservationConflict();
            return;
        }

        // Counted so that PREEMPT AND ABORT can wait for commands that already passed the gate.
        path.BeginCommand();
        try
        {
            if (!PrimaryCommands.TryExecute(path, command) && !BlockCommands.TryExecute(path, command))
                command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
        }
        finally
        {
            path.EndCommand();
        }
    }
}
