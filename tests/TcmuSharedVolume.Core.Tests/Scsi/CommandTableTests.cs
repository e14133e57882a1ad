using System.Buffers.Binary;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Reservations;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>
/// The command table against what is derived from it: every row dispatches to its handler,
/// REPORT SUPPORTED OPERATION CODES lists exactly the reported rows, the gate classifies every
/// opcode as the rows say, and reservations treat each row by its class.
/// </summary>
public sealed unsafe class CommandTableTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private readonly Volume _volume;
    private readonly VolumePath _a, _b;

    public CommandTableTests()
    {
        _volume = _f.CreateVolume();
        _a = _volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));
        _b = _volume.AddPath("vol-b", Nexus("iqn.2024-01.test:b", 1));
    }

    public void Dispose() => _f.Dispose();

    private static Command[] Rows => CommandTable.Entries;

    /// <summary>A service action of <paramref name="op"/> that no row names.</summary>
    private static int UnnamedServiceAction(byte op)
    {
        for (int sa = 0; sa < CommandTable.ServiceActionSlots; sa++)
            if (!Array.Exists(Rows, e => e.Op == op && e.ServiceAction == sa)) return sa;
        throw new InvalidOperationException($"{op:X2}h names every service action");
    }

    /// <summary>An all-zero CDB of the row's length with its opcode and service action.</summary>
    private static byte[] CdbFor(in Command e)
    {
        int length = e.IsReported ? e.CdbLength : e.Op == OperationCode.VariableLength ? 32 : CdbReader.LengthOfGroup(e.Op);
        var cdb = new byte[length];
        cdb[0] = e.Op;
        int sa = e.ServiceAction == CommandTable.OtherServiceActions ? UnnamedServiceAction(e.Op) : e.ServiceAction;
        if (sa < 0) return cdb;
        if (e.Op == OperationCode.VariableLength)
        {
            cdb[7] = 0x18; // ADDITIONAL CDB LENGTH of the 32-byte CDBs
            BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(8), (ushort)sa);
        }
        else
        {
            cdb[1] = (byte)sa;
        }
        return cdb;
    }

    /// <summary>The class of <see cref="CdbFor"/>'s CDB: the CDB-bit rules read an all-zero byte 4
    /// as "stop" (write class) and "allow removal" (allowed).</summary>
    private static AccessClass ClassOfZeroCdb(in Command e) =>
        e.Has(CommandFlags.AllowedWhenNotPreventing) ? AccessClass.Allowed : e.Access;

    [Fact]
    public void RowsAreWellFormed()
    {
        var seen = new HashSet<(byte, int)>();
        foreach (var e in Rows)
        {
            Assert.True(seen.Add((e.Op, e.ServiceAction)), $"{e}: duplicate row");
            Assert.True(e.ServiceAction is CommandTable.NoServiceAction or CommandTable.OtherServiceActions
                || e.ServiceAction < CommandTable.ServiceActionSlots, $"{e}: service action out of the table's range");
            if (e.HasServiceAction)
                Assert.DoesNotContain(Rows, x => x.Op == e.Op && x.ServiceAction == CommandTable.NoServiceAction);
            // A handler is reachable only for a command the initiator can find in RSOC.
            if (e.IsImplemented) Assert.True(e.IsReported, $"{e}: implemented but not reported");
            if (e.IsReported)
            {
                Assert.True(e.IsImplemented || e.Has(CommandFlags.AnsweredByKernel), $"{e}: reported but nobody answers it");
                // The CDB length is the one SPC-4 4.2.5.1 gives the group code: CheckCdb relies on it.
                Assert.Equal(CdbReader.LengthOfGroup(e.Op), e.CdbLength);
                Assert.Equal(e.Op, e.Usage![0]);
                Assert.Equal(0x04, e.Usage[^1]); // control byte: only NACA
                if (e.HasServiceAction) Assert.Equal(0x1F, e.Usage[1] & 0x1F);
                Assert.True(e.RecommendedTimeout > 0, $"{e}: no timeout");
            }
            else
            {
                Assert.False(e.IsImplemented);
                Assert.Equal(0, e.RecommendedTimeout);
            }
            if (e.ServiceAction == CommandTable.OtherServiceActions) Assert.False(e.IsReported, $"{e}");
            if (e.Has(CommandFlags.ChangesMedium)) Assert.Equal(AccessClass.Write, e.Access);
            Assert.Equal(e.Op is 0x5E or 0x5F or 0x16 or 0x17 or 0x56 or 0x57, e.Has(CommandFlags.ReservationCommand));
            // SAM-5 5.14.
            Assert.Equal(e.Op is OperationCode.Inquiry or OperationCode.ReportLuns or OperationCode.RequestSense,
                e.Has(CommandFlags.NoUnitAttention));
        }
        foreach (byte op in new byte[] { 0x5E, 0x5F, 0x16, 0x17, 0x56, 0x57 })
            Assert.True(OperationCode.IsReservationCommand(op));
        Assert.False(OperationCode.IsReservationCommand(OperationCode.Write10));
    }

    [Fact]
    public void EveryImplementedRowDispatchesToItsHandler()
    {
        foreach (var e in Rows)
        {
            if (!e.IsImplemented) continue;
            Assert.True((nint)e.Handler == CommandTable.HandlerAddressOf(e.Op, Math.Max(e.ServiceAction, 0)), $"{e}: routed elsewhere");
            var r = Run(_a, CdbFor(e));
            Assert.False(r.Status == ScsiStatus.CheckCondition && r.Code == SenseCode.InvalidCommandOperationCode, $"{e}: {r.Code}");
            if (e.HasServiceAction && !e.Has(CommandFlags.ReservationCommand))
                Assert.False(r.Status == ScsiStatus.CheckCondition && r.FieldPointer == (true, 1, 4), $"{e}: service action refused");
        }
    }

    [Fact]
    public void EveryOpcodeWithoutAHandlerIsAnInvalidCommandOperationCode()
    {
        for (int op = 0; op < 256; op++)
        {
            bool implemented = Array.Exists(Rows, e => e.Op == op && e.IsImplemented);
            int length = CdbReader.LengthOfGroup((byte)op);
            var cdb = new byte[length == 0 ? 16 : length];
            cdb[0] = (byte)op;
            var r = Run(_a, cdb);
            Assert.True(implemented != (r.Status == ScsiStatus.CheckCondition && r.Code == SenseCode.InvalidCommandOperationCode),
                $"{op:X2}h: {r.Status} {r.Code}");
            if (!implemented) Assert.Equal((nint)0, CommandTable.HandlerAddressOf((byte)op, 0));
        }
        // A service action no row names, of an opcode that has handlers: INVALID FIELD IN CDB at the service action.
        foreach (byte op in new byte[] { OperationCode.ServiceActionIn16, OperationCode.MaintenanceIn })
        {
            var e = Array.Find(Rows, x => x.Op == op && x.ServiceAction == CommandTable.OtherServiceActions);
            var r = Run(_a, CdbFor(e));
            r.AssertCheck(SenseCode.InvalidFieldInCdb);
            Assert.Equal((true, 1, 4), r.FieldPointer);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReportSupportedOperationCodesListsExactlyTheReportedRows(bool unmap)
    {
        var path = unmap ? _a
            : _f.CreateVolume(name: "thick", wrap: s => new FaultStore(s) { Unmappable = false }).AddPath("t", null);
        // Every reported row, by opcode and then service action.
        var expected = Rows.Where(e => e.IsReported && (unmap || !e.Has(CommandFlags.NeedsUnmap)))
            .OrderBy(e => e.Op).ThenBy(e => e.ServiceAction).ToArray();
        var d = In(path, Cdb.Rsoc(0, rctd: true), 8192).DataIn;
        Assert.Equal(d.Length - 4, (int)BinaryPrimitives.ReadUInt32BigEndian(d));
        int at = 4, i = 0;
        for (; at < d.Length; i++, at += 20)
        {
            Assert.True(i < expected.Length, $"more descriptors than rows: {d[at]:X2}h");
            var e = expected[i];
            Assert.Equal(e.Op, d[at]);
            Assert.Equal(e.HasServiceAction, (d[at + 5] & 0x01) != 0);
            Assert.Equal(Math.Max(e.ServiceAction, 0), BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 2)));
            Assert.Equal(e.CdbLength, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 6)));
            Assert.Equal(e.RecommendedTimeout, BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(at + 8 + 8)));

            // The one-command form: the row's CDB usage data and timeout.
            var one = In(path, Cdb.Rsoc(e.HasServiceAction ? 2 : 1, e.Op, (ushort)Math.Max(e.ServiceAction, 0), rctd: true), 512);
            one.AssertGood();
            Assert.Equal(0x80 | 0x03, one.DataIn[1]);
            Assert.Equal(e.Usage, one.DataIn.AsSpan(4, e.CdbLength).ToArray());
            Assert.Equal(e.RecommendedTimeout, BinaryPrimitives.ReadUInt32BigEndian(one.DataIn.AsSpan(4 + e.CdbLength + 8)));
        }
        Assert.Equal(expected.Length, i);
        // A row the gate knows but the target does not implement is "not supported".
        foreach (var e in Rows.Where(e => !e.IsReported && e.ServiceAction != CommandTable.OtherServiceActions))
        {
            var one = In(path, Cdb.Rsoc(3, e.Op, (ushort)Math.Max(e.ServiceAction, 0)), 512);
            one.AssertGood();
            Assert.Equal(0x01, one.DataIn[1] & 0x07);
        }
    }

    [Fact]
    public void GateClassifiesEveryOpcodeAsTheRowsSay()
    {
        for (int op = 0; op < 256; op++)
        {
            if (Array.Exists(Rows, e => e.Op == op)) continue;
            var cdb = new byte[32];
            cdb[0] = (byte)op;
            Assert.Equal(AccessClass.Write, ReservationAccess.Classify(cdb, out bool pass)); // unknown: write class
            Assert.False(pass);
        }
        foreach (var e in Rows)
        {
            Assert.True(ClassOfZeroCdb(e) == ReservationAccess.Classify(CdbFor(e), out bool pass), $"{e}");
            Assert.True(e.Has(CommandFlags.Spc2Pass) == pass, $"{e}: SPC-2 pass");
        }
        // A variable-length service action beyond the table's slots takes the "other" row.
        var write32 = new byte[32];
        write32[0] = OperationCode.VariableLength;
        write32[8] = 0x80;
        Assert.Equal(AccessClass.Write, ReservationAccess.Classify(write32, out _));
    }

    private void Reserve(PersistentReservationType type)
    {
        Out(_a, PrTestKit.PrOutCdb(0, 0, 24), PrTestKit.BasicList(0, 0xA)).AssertGood();
        Out(_a, PrTestKit.PrOutCdb(1, (byte)type, 24), PrTestKit.BasicList(0xA, 0)).AssertGood();
        foreach (var p in new[] { _a, _b }) while (_volume.Reservations.TryTakeUnitAttention(p.Nexus, out _)) { }
    }

    [Theory]
    [InlineData(PersistentReservationType.WriteExclusive)]
    [InlineData(PersistentReservationType.WriteExclusiveRegistrantsOnly)]
    [InlineData(PersistentReservationType.ExclusiveAccessAllRegistrants)]
    public void EveryMediumChangingRowConflictsForANonRegistrant(PersistentReservationType type)
    {
        Reserve(type);
        var medium = Rows.Where(e => e.Has(CommandFlags.ChangesMedium)).ToArray();
        Assert.Contains(medium, e => e.Op == OperationCode.Write10);
        Assert.Contains(medium, e => e.Op == OperationCode.Unmap);
        foreach (var e in medium)
            Assert.True(Run(_b, CdbFor(e)).Status == ScsiStatus.ReservationConflict, $"{e} under {type}");
    }

    /// <summary>Under EXCLUSIVE ACCESS, a nexus that is not the holder gets RESERVATION CONFLICT
    /// for every row that is not allowed class, implemented or not; the allowed rows it may not
    /// be refused, and the gate-only ones are then answered as not implemented.</summary>
    [Fact]
    public void UnderExclusiveAccessEveryRowConflictsUnlessAllowed()
    {
        Reserve(PersistentReservationType.ExclusiveAccess);
        foreach (var e in Rows)
        {
            if (e.Has(CommandFlags.ReservationCommand)) continue; // the engine's to judge
            var r = Run(_b, CdbFor(e));
            if (ClassOfZeroCdb(e) != AccessClass.Allowed)
            {
                Assert.True(r.Status == ScsiStatus.ReservationConflict, $"{e}: {r.Status} {r.Code}");
                continue;
            }
            Assert.True(r.Status != ScsiStatus.ReservationConflict, $"{e}: conflict");
            if (e.IsImplemented) continue;
            if (Array.Exists(Rows, x => x.Op == e.Op && x.IsImplemented))
                Assert.True(r.Code == SenseCode.InvalidFieldInCdb && r.FieldPointer == (true, 1, 4), $"{e}: {r.Code}");
            else
                Assert.True(r.Code == SenseCode.InvalidCommandOperationCode, $"{e}: {r.Code}");
        }
    }
}
