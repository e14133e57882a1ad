using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Scsi.OperationCode;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): every command that reaches a path, with the
/// CDB USAGE DATA bitmaps of the fields this target looks at. It includes the reservation
/// commands (answered by the reservation engine) and REPORT LUNS (answered by the kernel),
/// because to the initiator they are commands of this logical unit like any other.
/// </summary>
internal static class SupportedOperationCodes
{
    internal readonly struct Entry(byte op, int serviceAction, ushort timeoutSeconds, byte[] usage)
    {
        public byte Op { get; } = op;
        /// <summary>-1 when the operation code has no service actions.</summary>
        public int ServiceAction { get; } = serviceAction;
        public ushort RecommendedTimeout { get; } = timeoutSeconds;
        /// <summary>CDB USAGE DATA: byte 0 is the opcode, then the bits the device server examines.</summary>
        public byte[] Usage { get; } = usage;
        public bool HasServiceAction => ServiceAction >= 0;
    }

    private const ushort T = 30;   // data and control commands
    private const ushort Long = 120; // SYNCHRONIZE CACHE, UNMAP, WRITE SAME: may touch a lot of data

    // Control byte: NACA (bit 2) is the only bit examined (ACA is not supported).
    private const byte C = 0x04;
    // READ/WRITE byte 1: RDPROTECT/WRPROTECT (7:5), DPO (4), FUA (3).
    private const byte RwFlags = 0xF8;

    public static readonly Entry[] All =
    [
        new(TestUnitReady, -1, T, [TestUnitReady, 0, 0, 0, 0, C]),
        new(RequestSense, -1, T, [RequestSense, 0x01, 0, 0, 0xFF, C]),
        new(Read6, -1, T, [Read6, 0x1F, 0xFF, 0xFF, 0xFF, C]),
        new(Write6, -1, T, [Write6, 0x1F, 0xFF, 0xFF, 0xFF, C]),
        new(Inquiry, -1, T, [Inquiry, 0x03, 0xFF, 0xFF, 0xFF, C]),
        new(ModeSelect6, -1, T, [ModeSelect6, 0x11, 0, 0, 0xFF, C]),
        new(Reserve6, -1, T, [Reserve6, 0, 0, 0, 0, C]),
        new(Release6, -1, T, [Release6, 0, 0, 0, 0, C]),
        new(ModeSense6, -1, T, [ModeSense6, 0x08, 0xFF, 0xFF, 0xFF, C]),
        new(StartStopUnit, -1, T, [StartStopUnit, 0x01, 0, 0x0F, 0xF7, C]),
        new(SendDiagnostic, -1, T, [SendDiagnostic, 0xF7, 0, 0xFF, 0xFF, C]),
        new(PreventAllowMediumRemoval, -1, T, [PreventAllowMediumRemoval, 0, 0, 0, 0x03, C]),
        new(ReadCapacity10, -1, T, [ReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, C]),
        new(Read10, -1, T, [Read10, RwFlags, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, C]),
        new(Write10, -1, T, [Write10, RwFlags, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, C]),
        new(WriteAndVerify10, -1, T, [WriteAndVerify10, 0xF2, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, C]),
        new(Verify10, -1, T, [Verify10, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, C]),
        new(SynchronizeCache10, -1, Long, [SynchronizeCache10, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, C]),
        new(WriteSame10, -1, Long, [WriteSame10, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, C]),
        new(Unmap, -1, Long, [Unmap, 0x01, 0, 0, 0, 0, 0, 0xFF, 0xFF, C]),
        new(ModeSelect10, -1, T, [ModeSelect10, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, C]),
        new(Reserve10, -1, T, [Reserve10, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, C]),
        new(Release10, -1, T, [Release10, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, C]),
        new(ModeSense10, -1, T, [ModeSense10, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, C]),
        .. PrIn(0x00), .. PrIn(0x01), .. PrIn(0x02), .. PrIn(0x03),
        .. PrOut(0x00), .. PrOut(0x01), .. PrOut(0x02), .. PrOut(0x03),
        .. PrOut(0x04), .. PrOut(0x05), .. PrOut(0x06), .. PrOut(0x07),
        new(Read16, -1, T, [Read16, RwFlags, .. Ff(8), .. Ff(4), 0, C]),
        new(CompareAndWrite, -1, T, [CompareAndWrite, RwFlags, .. Ff(8), 0, 0, 0, 0xFF, 0, C]),
        new(Write16, -1, T, [Write16, RwFlags, .. Ff(8), .. Ff(4), 0, C]),
        new(WriteAndVerify16, -1, T, [WriteAndVerify16, 0xF2, .. Ff(8), .. Ff(4), 0, C]),
        new(Verify16, -1, T, [Verify16, 0xF6, .. Ff(8), .. Ff(4), 0, C]),
        new(SynchronizeCache16, -1, Long, [SynchronizeCache16, 0, .. Ff(8), .. Ff(4), 0, C]),
        new(WriteSame16, -1, Long, [WriteSame16, 0xFF, .. Ff(8), .. Ff(4), 0, C]),
        new(ServiceActionIn16, ServiceActionReadCapacity16, T,
            [ServiceActionIn16, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, .. Ff(4), 0, C]),
        new(ServiceActionIn16, ServiceActionGetLbaStatus, T,
            [ServiceActionIn16, 0x1F, .. Ff(8), .. Ff(4), 0, C]),
        new(ReportLuns, -1, T, [ReportLuns, 0, 0xFF, 0, 0, 0, .. Ff(4), 0, C]),
        new(MaintenanceIn, ServiceActionReportSupportedOperationCodes, T,
            [MaintenanceIn, 0x1F, 0x87, 0xFF, 0xFF, 0xFF, .. Ff(4), 0, C]),
        new(Read12, -1, T, [Read12, RwFlags, .. Ff(4), .. Ff(4), 0, C]),
        new(Write12, -1, T, [Write12, RwFlags, .. Ff(4), .. Ff(4), 0, C]),
        new(WriteAndVerify12, -1, T, [WriteAndVerify12, 0xF2, .. Ff(4), .. Ff(4), 0, C]),
        new(Verify12, -1, T, [Verify12, 0xF6, .. Ff(4), .. Ff(4), 0, C]),
    ];

    private static byte[] Ff(int n)
    {
        var a = new byte[n];
        Array.Fill(a, (byte)0xFF);
        return a;
    }

    // PR IN: service action (4:0), ALLOCATION LENGTH 7-8.
    private static Entry[] PrIn(int sa) =>
        [new(PersistentReserveIn, sa, T, [PersistentReserveIn, 0x1F, 0, 0, 0, 0, 0, 0xFF, 0xFF, C])];

    // PR OUT: service action (4:0), SCOPE/TYPE byte 2, PARAMETER LIST LENGTH 5-8.
    private static Entry[] PrOut(int sa) =>
        [new(PersistentReserveOut, sa, T, [PersistentReserveOut, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, C])];

    /// <summary>
    /// Whether this volume really supports the entry: UNMAP needs a store that deallocates,
    /// COMPARE AND WRITE one that can do a block atomically (VPD B0h), and SPC-2 RESERVE and
    /// RELEASE a table of this host alone (docs/reservations.md §18).
    /// </summary>
    public static bool IsSupported(in Entry e, Volume volume) => e.Op switch
    {
        Unmap => volume.Store.SupportsUnmap,
        CompareAndWrite => BlockLimitsOf.MaxCompareAndWriteBlocks(volume) > 0,
        Reserve6 or Release6 or Reserve10 or Release10 => !volume.Reservations.IsShared,
        _ => true,
    };

    public static bool OpcodeHasServiceActions(byte op)
    {
        foreach (ref readonly var e in All.AsSpan())
            if (e.Op == op) return e.HasServiceAction;
        return false;
    }

    public static int Find(byte op, int serviceAction)
    {
        var all = All.AsSpan();
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
        foreach (ref readonly var e in All.AsSpan())
        {
            if (!IsSupported(e, volume)) continue;
            b.Slice(at, 8).Clear();
            b[at] = e.Op;
            Be.U16(b, at + 2, e.HasServiceAction ? e.ServiceAction : 0);
            b[at + 5] = (byte)((rctd ? 0x02 : 0) | (e.HasServiceAction ? 0x01 : 0)); // CTDP, SERVACTV
            Be.U16(b, at + 6, e.Usage.Length);
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
        var e = All[index];
        b[1] = (byte)((rctd ? 0x80 : 0) | 0x03); // CTDP | SUPPORT 011b: supported as the standard says
        Be.U16(b, 2, e.Usage.Length);
        e.Usage.CopyTo(b.Slice(4));
        int at = 4 + e.Usage.Length;
        if (rctd) at += WriteTimeouts(e, b.Slice(at));
        return at;
    }

    // SPC-4 6.35.4 command timeouts descriptor: nominal 0 (not specified), recommended in seconds.
    private static int WriteTimeouts(in Entry e, Span<byte> b)
    {
        b.Slice(0, 12).Clear();
        Be.U16(b, 0, 0x0A);
        Be.U32(b, 8, e.RecommendedTimeout);
        return 12;
    }
}
