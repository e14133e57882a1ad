using System.Buffers;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// Asymmetric logical unit access (SPC-4 5.15): REPORT TARGET PORT GROUPS (6.37) and the target
/// port group designator of VPD 83h (7.8.6.8), reached through <see cref="CommandTable"/>. One
/// group per target host (<see cref="PortGroupDirectory"/>); the port a command came in on is
/// known, because every path is its own backstore (docs/architecture.md §3, §12).
/// </summary>
/// <remarks>
/// Implicit ALUA only (INQUIRY TPGS=01b): the access states follow the configuration, so SET
/// TARGET PORT GROUPS is not supported and MAINTENANCE OUT has no row in the table (INVALID
/// COMMAND OPERATION CODE; write class for the reservation gate). docs/architecture.md §12 says why.
/// </remarks>
internal static class TargetPortGroups
{
    /// <summary>Standard INQUIRY byte 5 bits 5-4 (SPC-4 6.6.2): implicit asymmetric access only.</summary>
    public const byte TpgsImplicit = 0x10;

    // SPC-4 Table 211 byte 1: the states a group may be in, AO_SUP and AN_SUP; never Standby,
    // Unavailable or Transitioning, so a host never blocks commands the kernel passed to it.
    private const byte SupportedStates = 0x02 | 0x01;

    // SPC-4 Table 211 STATUS CODE 00h: no status available (no transition was ever made).
    private const byte NoStatus = 0x00;

    // SPC-4 6.37.2 Table 208 PARAMETER DATA FORMAT.
    private const int LengthOnlyHeader = 0, ExtendedHeader = 1;

    /// <summary>TARGET PORT COUNT is one byte: a group lists at most this many ports.</summary>
    private const int MaxPortsPerGroup = 255;

    /// <summary>Stack buffers up to this size; a larger answer (dozens of hosts) rents one.</summary>
    private const int StackLimit = 1024;

    /// <summary>SPC-4 7.8.6.8: target port group designator (type 5h) of the receiving port's group.</summary>
    public static int WriteDesignator(VolumePath path, Span<byte> b)
    {
        // Binary, target port association. PIV (and the protocol) only where the target port is
        // known: an unbound path is still one of this host's ports, so its group is known too.
        if (path.Nexus is { } nexus)
        {
            b[0] = (byte)(((int)nexus.Target.Protocol << 4) | 0x01);
            b[1] = 0x80 | 0x10 | 0x05;
        }
        else
        {
            b[0] = 0x01;
            b[1] = 0x10 | 0x05;
        }
        b[2] = 0;
        b[3] = 4;
        b[4] = b[5] = 0;
        Be.U16(b, 6, path.Volume.PortGroups.LocalGroup);
        return 8;
    }

    // ---- MAINTENANCE IN: REPORT TARGET PORT GROUPS (SPC-4 6.37) ----

    internal static void Report(VolumePath path, ScsiCommand command, CdbReader cdb)
    {
        int format = cdb.Bits(1, 7, 5);
        if (format is not (LengthOnlyHeader or ExtendedHeader))
        {
            PrimaryCommands.Invalid(command, 1, 7);
            return;
        }
        uint allocation = cdb.U32(6);

        var groups = path.Volume.PortGroups;
        var paths = path.Volume.Paths;
        ushort[]? rentedPorts = paths.Count > MaxPortsPerGroup ? ArrayPool<ushort>.Shared.Rent(paths.Count) : null;
        Span<ushort> local = rentedPorts is not null ? rentedPorts : stackalloc ushort[MaxPortsPerGroup];
        local = local[..Math.Min(PortGroupDirectory.LocalPorts(paths, local), MaxPortsPerGroup)];
        var remote = groups.Remote;

        int header = format == ExtendedHeader ? 8 : 4;
        int length = header + GroupLength(local.Length);
        foreach (var r in remote) length += GroupLength(Math.Min(r.Ports.Length, MaxPortsPerGroup));
        byte[]? rented = length > StackLimit ? ArrayPool<byte>.Shared.Rent(length) : null;
        Span<byte> b = rented is not null ? rented : stackalloc byte[StackLimit];
        b = b[..length];
        try
        {
            b[..header].Clear();
            // RETURN DATA LENGTH: the bytes after the field (SPC-4 Tables 209, 210: n - 3), so the
            // extended header's four bytes are counted, as initiators read it (length + 4).
            Be.U32(b, 0, (uint)(length - 4));
            if (format == ExtendedHeader)
            {
                b[4] = 0x10; // FORMAT TYPE 001b
                b[5] = 0;    // IMPLICIT TRANSITION TIME: unspecified, there are no transitions
            }

            // Ascending by group, this host's among the others'.
            int at = header;
            bool localWritten = false;
            foreach (var r in remote)
            {
                if (!localWritten && groups.LocalGroup < r.Group)
                {
                    at += WriteGroup(b[at..], groups, groups.LocalGroup, local);
                    localWritten = true;
                }
                at += WriteGroup(b[at..], groups, r.Group, r.Ports.AsSpan(0, Math.Min(r.Ports.Length, MaxPortsPerGroup)));
            }
            if (!localWritten) at += WriteGroup(b[at..], groups, groups.LocalGroup, local);
            PrimaryCommands.DataIn(command, b[..at], allocation);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
            if (rentedPorts is not null) ArrayPool<ushort>.Shared.Return(rentedPorts);
        }
    }

    private static int GroupLength(int ports) => 8 + 4 * ports;

    /// <summary>SPC-4 Table 211 target port group descriptor, then Table 212 per port.</summary>
    private static int WriteGroup(Span<byte> b, PortGroupDirectory groups, ushort group, ReadOnlySpan<ushort> ports)
    {
        b[0] = groups.StateOf(group); // PREF=0: the state alone says which group to prefer
        b[1] = SupportedStates;
        Be.U16(b, 2, group);
        b[4] = 0;
        b[5] = NoStatus;
        b[6] = 0;
        b[7] = (byte)ports.Length;
        int at = 8;
        foreach (ushort rtpi in ports)
        {
            b[at] = b[at + 1] = 0; // obsolete
            Be.U16(b, at + 2, rtpi);
            at += 4;
        }
        return at;
    }
}
