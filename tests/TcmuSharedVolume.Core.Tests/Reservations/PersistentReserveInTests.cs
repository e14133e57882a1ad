using System.Buffers.Binary;
using System.Text;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>PR IN data formats (docs/reservations.md §12).</summary>
public class PersistentReserveInTests
{
    [Fact]
    public void ReadKeysTruncatedToEightBytesStillReportsFullAdditionalLength()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 0x1122334455667788));
        Good(k.Register(k[1], 0, 2));
        var r = k.PrIn(k[0], 0x00, allocation: 8, bufferLength: 64);
        Good(r);
        Assert.Equal(8, r.Data.Length); // DataInLength = bytes produced
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4)));
        var full = k.PrIn(k[0], 0x00);
        Assert.Equal(24, full.Data.Length);
        Assert.Equal(0x1122334455667788UL, BinaryPrimitives.ReadUInt64BigEndian(full.Data.AsSpan(8)));
    }

    [Fact]
    public void AllocationLengthZeroReturnsNothing()
    {
        var k = new PrTestKit();
        var r = k.PrIn(k[0], 0x00, allocation: 0, bufferLength: 16);
        Good(r);
        Assert.Empty(r.Data);
    }

    [Fact]
    public void ReportCapabilitiesAdvertisesWhatIsImplemented()
    {
        var k = new PrTestKit();
        var d = k.PrIn(k[0], 0x02).Data;
        Assert.Equal(8, d.Length);
        Assert.Equal(8, BinaryPrimitives.ReadUInt16BigEndian(d));
        Assert.Equal(0x10 | 0x08 | 0x04 | 0x01, d[2]); // CRH SIP_C ATP_C PTPL_C, RLR_C=0
        Assert.Equal(0x80, d[3] & 0x80); // TMV
        Assert.InRange((d[3] >> 4) & 7, 1, 5); // libiscsi: ALLOW COMMANDS <= 5
        Assert.Equal(0, d[3] & 0x01); // PTPL_A off
        Assert.Equal(0xEA, d[4]);
        Assert.Equal(0x01, d[5]);
    }

    /// <summary>
    /// SPC-4 REPORT CAPABILITIES, ALLOW COMMANDS 011b: TEST UNIT READY passes Write Exclusive and
    /// Exclusive Access reservations, and MODE SENSE, READ ATTRIBUTE, READ BUFFER, RECEIVE COPY
    /// RESULTS, RECEIVE DIAGNOSTIC RESULTS, REPORT SUPPORTED OPERATION CODES, REPORT SUPPORTED
    /// TASK MANAGEMENT FUNCTIONS and READ DEFECT DATA pass Write Exclusive. The gate must agree
    /// with the claim for an unregistered nexus.
    /// </summary>
    [Fact]
    public void AllowCommandsClaimAgreesWithTheGate()
    {
        var k = new PrTestKit();
        Assert.Equal(0b011, (k.PrIn(k[0], 0x02).Data[3] >> 4) & 7);
        byte[] tur = [0x00, 0, 0, 0, 0, 0];
        byte[][] passWriteExclusive =
        [
            [0x1A, 0, 0x3F, 0, 0xFF, 0],                                    // MODE SENSE(6)
            [0x5A, 0, 0x3F, 0, 0, 0, 0, 0, 0xFF, 0],                        // MODE SENSE(10)
            [0x8C, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0],         // READ ATTRIBUTE
            [0x3C, 0x02, 0, 0, 0, 0, 0, 0, 0, 0],                           // READ BUFFER
            [0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0],      // RECEIVE COPY RESULTS
            [0x1C, 0, 0, 0, 0xFF, 0],                                       // RECEIVE DIAGNOSTIC RESULTS
            [0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],                  // REPORT SUPPORTED OPERATION CODES
            [0xA3, 0x0D, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],                  // REPORT SUPPORTED TMFs
            [0x37, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0],                           // READ DEFECT DATA(10)
            [0xB7, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0],                     // READ DEFECT DATA(12)
        ];
        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusive));
        Assert.True(k.Pr.IsAllowed(k[1], tur));
        foreach (var cdb in passWriteExclusive)
            Assert.True(k.Pr.IsAllowed(k[1], cdb), $"{cdb[0]:X2}h should pass Write Exclusive under ALLOW COMMANDS 011b");
        Good(k.Release(k[0], 1, PersistentReservationType.WriteExclusive));
        Good(k.Reserve(k[0], 1, PersistentReservationType.ExclusiveAccess));
        Assert.True(k.Pr.IsAllowed(k[1], tur));
    }

    [Fact]
    public void ServiceActionsFourToThirtyOneAreInvalidFieldInCdb()
    {
        var k = new PrTestKit();
        for (byte sa = 0; sa < 4; sa++) Good(k.PrIn(k[0], sa));
        for (byte sa = 4; sa < 0x20; sa++) Check(k.PrIn(k[0], sa), SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void UnboundPathMayReadReservationState()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 3));
        var r = k.PrIn(null, 0x00);
        Good(r);
        Assert.Equal(8u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4)));
    }

    [Fact]
    public void ReadFullStatusDescribesEachRegistrationWithFullIsidTransportId()
    {
        var k = new PrTestKit(nexuses: 2);
        Good(k.Register(k[0], 0, 0xAA));
        Good(k.Register(k[1], 0, 0xBB));
        Good(k.Reserve(k[1], 0xBB, PersistentReservationType.ExclusiveAccess));
        var d = k.PrIn(k[0], 0x03).Data;
        Assert.Equal(k.Generation, BinaryPrimitives.ReadUInt32BigEndian(d));
        Assert.Equal(d.Length - 8, (int)BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(4)));
        int o = 8;
        for (int i = 0; i < 2; i++)
        {
            ulong key = BinaryPrimitives.ReadUInt64BigEndian(d.AsSpan(o));
            Assert.Equal(i == 0 ? 0xAAUL : 0xBBUL, key);
            Assert.Equal(i == 1 ? 1 : 0, d[o + 12] & 1); // R_HOLDER
            Assert.Equal(i == 1 ? 3 : 0, d[o + 13]);
            Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(o + 18)));
            int tidLength = (int)BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(o + 20));
            Assert.Equal(0, tidLength % 4);
            var tid = d.AsSpan(o + 24, tidLength);
            Assert.Equal(0x45, tid[0]); // format 01b, iSCSI
            Assert.Equal(tidLength - 4, BinaryPrimitives.ReadUInt16BigEndian(tid.Slice(2)));
            string text = Encoding.ASCII.GetString(tid[4..]).TrimEnd('\0');
            Assert.Equal($"{PrTestKit.InitiatorName(i)},i,0x40000137{i:x4}", text); // all 12 ISID digits (docs/reservations.md §12)
            o += 24 + tidLength;
        }
        Assert.Equal(d.Length, o);
    }

    [Fact]
    public void ReadFullStatusUnderAllRegistrantsMarksEveryoneHolderAndUsesFormat00WithoutIsid()
    {
        var k = new PrTestKit(nexuses: 0);
        var a = new ItNexus(new InitiatorPort(ProtocolId.Iscsi, "iqn.x:a"), new TargetPort(ProtocolId.Iscsi, "t", 3));
        k.Bound.Add(a);
        Good(k.Register(a, 0, 1, allTgPt: true));
        Good(k.Reserve(a, 1, PersistentReservationType.ExclusiveAccessAllRegistrants));
        var d = k.PrIn(a, 0x03).Data;
        Assert.Equal(0x03, d[8 + 12]); // ALL_TG_PT, R_HOLDER
        Assert.Equal(8, d[8 + 13]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(8 + 18))); // RTPI undefined with ALL_TG_PT
        Assert.Equal(0x05, d[8 + 24]);
        Assert.Equal(24, (int)BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(8 + 20))); // 4 + minimum 20
    }

    [Fact]
    public void ReadReservationTruncatedKeepsLength()
    {
        var k = new PrTestKit();
        Good(k.Register(k[0], 0, 1));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusive));
        var r = k.PrIn(k[0], 0x01, allocation: 10);
        Assert.Equal(10, r.Data.Length);
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4)));
    }
}
