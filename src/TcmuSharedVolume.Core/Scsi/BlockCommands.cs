using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// SBC-3 block commands (the target_core_sbc.c of this project).
/// PLACEHOLDER: filled in by issue 3.
/// </summary>
public static class BlockCommands
{
    /// <summary>Runs the command if it is a block command; false if the opcode is not one.</summary>
    public static bool TryExecute(VolumePath path, ScsiCommand command)
    {
        _ = path;
        _ = command;
        return false;
    }
}
