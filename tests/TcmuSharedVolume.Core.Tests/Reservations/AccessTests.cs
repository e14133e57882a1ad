using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>The reservation gate: libiscsi's access and ownership tests and the access table of docs/reservations.md §11.</summary>
public class AccessTests
{
    /// <summary>libiscsi ProutReserve.Access*: second initiator read/write while registered, then after unregistering.</summary>
    [Theory]
    [InlineData(PersistentReservationType.ExclusiveAccess, false, false, false, false)]
    [InlineData(PersistentReservationType.WriteExclusive, true, false, true, false)]
    [InlineData(PersistentReservationType.ExclusiveAccessRegistrantsOnly, true, true, false, false)]
    [InlineData(PersistentReservationType.WriteExclusiveRegistrantsOnly, true, true, true, false)]
    [InlineData(PersistentReservationType.ExclusiveAccessAllRegistrants, true, true, false, false)]
    [InlineData(PersistentReservationType.WriteExclusiveAllRegistrants, true, true, true, false)]
    public void LibiscsiAccessMatrix(PersistentReservationType type, bool regRead, bool regWrite, bool unregRead, bool unregWrite)
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, type));
        Assert.True(k.CanRead(k[0]));
        Assert.True(k.CanWrite(k[0]));
        Assert.Equal(regRead, k.CanRead(k[1]));
        Assert.Equal(regWrite, k.CanWrite(k[1]));
        Good(k.Register(k[1], 2, 0));
        Assert.Equal(unregRead, k.CanRead(k[1]));
        Assert.Equal(unregWrite, k.CanWrite(k[1]));
    }

    /// <summary>libiscsi ProutReserve.Ownership*: the reserving initiator unregisters.</summary>
    [Theory]
    [InlineData(PersistentReservationType.WriteExclusive, false)]
    [InlineData(PersistentReservationType.ExclusiveAccess, false)]
    [InlineData(PersistentReservationType.WriteExclusiveRegistrantsOnly, false)]
    [InlineData(PersistentReservationType.ExclusiveAccessRegistrantsOnly, false)]
    [InlineData(PersistentReservationType.WriteExclusiveAllRegistrants, true)]
    [InlineData(PersistentReservationType.ExclusiveAccessAllRegistrants, true)]
    public void LibiscsiOwnership(PersistentReservationType type, bool kept)
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, type));
        Good(k.Register(k[0], 1, 0));
        if (!kept)
        {
            Assert.Null(k.ReadReservation());
            Assert.True(k.CanWrite(k[2]));
            return;
        }
        Assert.Equal((0UL, type), k.ReadReservation());
        Good(k.Release(k[1], 2, type));
        Assert.Null(k.ReadReservation());
    }

    // docs/reservations.md §11 columns: WE(any) EA(any) WERO/WEAR-reg WERO/WEAR-unreg EARO/EAAR-reg EARO/EAAR-unreg
    public static TheoryData<string, byte[], string> ConflictTable() => new()
    {
        { "INQUIRY", [0x12, 0, 0, 0, 36, 0], "OOOOOO" },
        { "REPORT LUNS", [0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], "OOOOOO" },
        { "REQUEST SENSE", [0x03, 0, 0, 0, 18, 0], "OOOOOO" },
        { "TEST UNIT READY", [0x00, 0, 0, 0, 0, 0], "OOOOOO" },
        { "READ CAPACITY(10)", [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], "OOOOOO" },
        { "READ CAPACITY(16)", [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], "OOOOOO" },
        { "LOG SENSE", [0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0], "OOOOOO" },
        { "REPORT TARGET PORT GROUPS", [0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "OOOOOO" },
        { "PERSISTENT RESERVE IN", [0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0], "OOOOOO" },
        { "START STOP UNIT start", [0x1B, 0, 0, 0, 0x01, 0], "OOOOOO" },
        { "PREVENT ALLOW allow", [0x1E, 0, 0, 0, 0, 0], "OOOOOO" },
        { "READ(6)", [0x08, 0, 0, 0, 1, 0], "ORoOoR" },
        { "READ(10)", PrTestKit.Read10, "ORoOoR" },
        { "READ(16)", [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], "ORoOoR" },
        { "READ(32)", [0x7F, 0, 0, 0, 0, 0, 0, 0x18, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], "ORoOoR" },
        { "VERIFY(10)", [0x2F, 0, 0, 0, 0, 0, 0, 0, 1, 0], "ORoOoR" },
        { "PRE-FETCH(10)", [0x34, 0, 0, 0, 0, 0, 0, 0, 1, 0], "ORoOoR" },
        { "GET LBA STATUS", [0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], "ORoOoR" },
        { "MODE SENSE(6)", [0x1A, 0, 0x3F, 0, 0xFF, 0], "ORoOoR" },
        { "MODE SENSE(10)", [0x5A, 0, 0x3F, 0, 0, 0, 0, 0, 0xFF, 0], "ORoOoR" },
        { "REPORT SUPPORTED OPCODES", [0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], "ORoOoR" },
        { "READ BUFFER", [0x3C, 0x02, 0, 0, 0, 0, 0, 0, 0, 0], "ORoOoR" },
        { "WRITE(6)", [0x0A, 0, 0, 0, 1, 0], "RRoRoR" },
        { "WRITE(10)", PrTestKit.Write10, "RRoRoR" },
        { "WRITE(16)", [0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], "RRoRoR" },
        { "WRITE(32)", [0x7F, 0, 0, 0, 0, 0, 0, 0x18, 0x00, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], "RRoRoR" },
        { "WRITE AND VERIFY(10)", [0x2E, 0, 0, 0, 0, 0, 0, 0, 1, 0], "RRoRoR" },
        { "WRITE SAME(16)", [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], "RRoRoR" },
        { "UNMAP", [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], "RRoRoR" },
        { "COMPARE AND WRITE", [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], "RRoRoR" },
        { "SYNCHRONIZE CACHE(10)", [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], "RRoRoR" },
        { "SYNCHRONIZE CACHE(16)", [0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "RRoRoR" },
        { "START STOP UNIT stop", [0x1B, 0, 0, 0, 0x00, 0], "RRoRoR" },
        { "START STOP UNIT power condition", [0x1B, 0, 0, 0, 0x31, 0], "RRoRoR" },
        { "PREVENT ALLOW prevent", [0x1E, 0, 0, 0, 0x01, 0], "RRoRoR" },
        { "FORMAT UNIT", [0x04, 0, 0, 0, 0, 0], "RRoRoR" },
        { "SANITIZE", [0x48, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], "RRoRoR" },
        { "MODE SELECT(10)", [0x55, 0x10, 0, 0, 0, 0, 0, 0, 24, 0], "RRoRoR" },
        { "WRITE BUFFER", [0x3B, 0x02, 0, 0, 0, 0, 0, 0, 0, 0], "RRoRoR" },
        { "EXTENDED COPY", [0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "RRoRoR" },
        // SBC-3 lets READ DEFECT DATA through Write Exclusive, and ALLOW COMMANDS 011b says so.
        { "READ DEFECT DATA(10)", [0x37, 0, 0, 0, 0, 0, 0, 0, 0, 0], "ORoOoR" },
        { "READ DEFECT DATA(12)", [0xB7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "ORoOoR" },
        { "RECEIVE COPY RESULTS", [0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], "ORoOoR" },
        { "vendor opcode", [0xC0, 0, 0, 0, 0, 0], "RRoRoR" },
        // Not supported (implicit ALUA only), but a fenced node still hears RESERVATION CONFLICT.
        { "SET TARGET PORT GROUPS", [0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0], "RRoRoR" },
    };

    /// <summary>
    /// 'O' allowed, 'R' conflict, 'o' allowed because the nexus is registered (the reg columns are
    /// holders under WEAR/EAAR). Every row is checked under the RO type and the AR type, for a
    /// registered non-holder, an unregistered nexus and (always allowed) the holder.
    /// </summary>
    [Theory]
    [MemberData(nameof(ConflictTable))]
    public void ConflictTableRow(string name, byte[] cdb, string expected)
    {
        bool Ok(char c) => c is 'O' or 'o';
        var cases = new (PersistentReservationType Type, bool Registered, char Expect)[]
        {
            (PersistentReservationType.WriteExclusive, true, expected[0]),
            (PersistentReservationType.WriteExclusive, false, expected[0]),
            (PersistentReservationType.ExclusiveAccess, true, expected[1]),
            (PersistentReservationType.ExclusiveAccess, false, expected[1]),
            (PersistentReservationType.WriteExclusiveRegistrantsOnly, true, expected[2]),
            (PersistentReservationType.WriteExclusiveAllRegistrants, true, expected[2]),
            (PersistentReservationType.WriteExclusiveRegistrantsOnly, false, expected[3]),
            (PersistentReservationType.WriteExclusiveAllRegistrants, false, expected[3]),
            (PersistentReservationType.ExclusiveAccessRegistrantsOnly, true, expected[4]),
            (PersistentReservationType.ExclusiveAccessAllRegistrants, true, expected[4]),
            (PersistentReservationType.ExclusiveAccessRegistrantsOnly, false, expected[5]),
            (PersistentReservationType.ExclusiveAccessAllRegistrants, false, expected[5]),
        };
        foreach (var (type, registered, expect) in cases)
        {
            var k = new PrTestKit();
            Good(k.Register(k[0], 0, 1));
            if (registered) Good(k.Register(k[1], 0, 2));
            Good(k.Reserve(k[0], 1, type));
            Assert.True(k.Pr.IsAllowed(k[0], cdb), $"{name}: holder under {type}");
            Assert.True(k.Pr.IsAllowed(k[1], cdb) == Ok(expect), $"{name} under {type}, registered={registered}: expected {(Ok(expect) ? "allowed" : "conflict")}");
        }
        // With no reservation everything passes, registered or not.
        var free = new PrTestKit();
        Good(free.Register(free[0], 0, 1));
        Assert.True(free.Pr.IsAllowed(free[0], cdb));
        Assert.True(free.Pr.IsAllowed(free[1], cdb));
    }

    [Fact]
    public void FencedNodeUnderWeroCanReadButNotFlush()
    {
        // fence_scsi: the victim, now unregistered under WERO, must not get a SYNCHRONIZE CACHE through (docs/reservations.md §11).
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        Good(k.Preempt(k[0], 1, 2, PersistentReservationType.WriteExclusiveRegistrantsOnly, abort: true));
        Assert.True(k.CanRead(k[1]));
        Assert.False(k.Pr.IsAllowed(k[1], [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        Assert.False(k.CanWrite(k[1]));
    }
}
