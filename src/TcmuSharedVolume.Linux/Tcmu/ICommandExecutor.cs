using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>What runs the commands of one ring (the daemon's: CommandSet.Execute on the ring's path).</summary>
public interface ICommandExecutor
{
    /// <summary>Runs on one of the loop's threads; sets the command's status. The loop completes it afterwards.</summary>
    void Execute(ScsiCommand command);

    /// <summary>A TMR notification (docs/tcmu.md §11), on the thread that found it while draining
    /// the ring: keep it short. Listed commands that were still queued have already been completed with TASK
    /// ABORTED; running ones complete normally. For LUN RESET, apply the logical unit's reset
    /// semantics here.</summary>
    void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds);
}
