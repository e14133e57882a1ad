using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// SPC-4 primary commands (the target_core_spc.c of this project).
/// PLACEHOLDER: filled in by issue 3.
/// </summary>
public static class PrimaryCommands
{
    /// <summary>Runs the command if it is a primary command; false if the opcode is not one.</summary>
    public static bool TryExecute(VolumePath path, ScsiCommand command)
    {
        _ = path;
        _ = command;
        return false;
    }
}
