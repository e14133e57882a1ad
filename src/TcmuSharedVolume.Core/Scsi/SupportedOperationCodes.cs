using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): every reported row of <see cref="CommandTable"/>,
/// with the CDB USAGE DATA bitmaps of the fields this target looks at. It includes the reservation
/// commands (answered by the reservation engine) and REPORT LUNS (answered by the kernel),
/// because to the initiator they are commands of this logical unit like any other.
/// </summary>
internal static class SupportedOperationCodes
{
    /// <summary>The reported rows of <see cref="CommandTable"/>, by opcode and service action.</summary>
    public static ReadOnlySpan<Command> All => CommandTable.Reported;

    /// <summary>
    /// Whether this volume really supports the entry: UNMAP needs a store that deallocates,
    /// COMPARE AND WRITE one that can do a block atomically (VPD B0h), and SPC-2 RESERVE and
    /// RELEASE a table of this host alone (docs/reservations.md §18).
    /// </summary>
    public static bool IsSupported(in Command e, Volume volume) =>
        (!e.Has(CommandFlags.NeedsUnmap) || volume.Store.SupportsUnmap)
        && (!e.Has(CommandFlags.NeedsAtomicCompareAndWrite) || BlockLimitsOf.MaxCompareAndWriteBlocks(volume) > 0)
        && (!e.Has(CommandFlags.NeedsLocalTable) || !volume.Reservations.IsShared);

    public static bool OpcodeHasServiceActions(byte op)
    {
        foreach (ref readonly var e in All)
            if (e.Op == op) return e.HasServiceAction;
        return false;
    }

    public static int Find(byte op, int serviceAction)
    {
        var all = All;
        for (int i = 0; i < all.Length; i++)
            if (all[i].Op == op && (serviceAction < 0 ? !all[i].HasServiceAction : all[i].ServiceAction == serviceAction))
                return i;
        return -1;
    }

    /// <summary>Bytes that reporting option 000b produces, at most.</summary>
    public static int AllLength(bool rctd) => 4 + All.Length * (rctd ? 20 : 8);

    /// <summary>SPC-4 6.35.2: the "all commands" parameter data.</summary>
    public static int WriteAll(Volume volume, bool rctd, Span<byte> b)
    {
        int at = 4;
        foreach (ref readonly var e in All)
        {
            if (!IsSupported(e, volume)) continue;
            b.Slice(at, 8).Clear();
            b[at] = e.Op;
            Be.U16(b, at + 2, e.HasServiceAction ? e.ServiceAction : 0);
            b[at + 5] = (byte)((rctd ? 0x02 : 0) | (e.HasServiceAction ? 0x01 : 0)); // CTDP, SERVACTV
            Be.U16(b, at + 6, e.CdbLength);
            at += 8;
            if (rctd) at += WriteTimeouts(e, b.Slice(at));
        }
        Be.U32(b, 0, (uint)(at - 4));
        return at;
    }

    /// <summary>SPC-4 6.35.3: the "one command" parameter data; <paramref name="index"/> -1 when not supported.</summary>
    public static int WriteOne(Volume volume, int index, bool rctd, Span<byte> b)
    {
        b.Slice(0, 4).Clear();
        if (index < 0 || !IsSupported(All[index], volume))
        {
            b[1] = 0x01; // SUPPORT 001b: not supported; CDB SIZE 0
            return 4;
        }
        ref readonly var e = ref All[index];
        b[1] = (byte)((rctd ? 0x80 : 0) | 0x03); // CTDP | SUPPORT 011b: supported as the standard says
        Be.U16(b, 2, e.CdbLength);
        e.Usage!.CopyTo(b.Slice(4));
        int at = 4 + e.CdbLength;
        if (rctd) at += WriteTimeouts(e, b.Slice(at));
        return at;
    }

    // SPC-4 6.35.4 command timeouts descriptor: nominal 0 (not specified), recommended in seconds.
    private static int WriteTimeouts(in Command e, Span<byte> b)
    {
        b.Slice(0, 12).Clear();
        Be.U16(b, 0, 0x0A);
        Be.U32(b, 8, e.RecommendedTimeout);
        return 12;
    }
}
