using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>What runs the commands of one ring (the daemon's: CommandSet.Execute on the ring's path).</summary>
public interface ICommandExecutor
{
    /// <summary>
    /// Runs on one of the loop's threads. True: the command's status is set and the loop
    /// completes it. False: the command went to a store that finishes it on its own thread,
    /// through <see cref="ScsiCommand.Completion"/> (which the loop sets before the call); the
    /// executor must not touch it again.
    /// </summary>
    bool Execute(ScsiCommand command);

    /// <summary>A TMR notification (docs/tcmu.md §11), on the thread that found it while draining
    /// the ring: keep it short. Listed commands that were still queued have already been completed with TASK
    /// ABORTED; running ones complete normally. For LUN RESET, apply the logical unit's reset
    /// semantics here.</summary>
    void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds);
}
