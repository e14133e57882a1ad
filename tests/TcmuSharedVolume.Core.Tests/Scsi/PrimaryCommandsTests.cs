using System.Buffers.Binary;
using System.Text;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

public sealed class PrimaryCommandsTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private readonly Volume _volume;
    private readonly VolumePath _a, _b;

    public PrimaryCommandsTests()
    {
        _volume = _f.CreateVolume();
        _a = _volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));
        _b = _volume.AddPath("vol-b", Nexus("iqn.2024-01.test:b", 2));
    }

    public void Dispose() => _f.Dispose();

    private static byte[] Vpd(VolumePath p, byte page)
    {
        var r = In(p, Cdb.Inquiry(true, page, 1024), 1024);
        r.AssertGood();
        Assert.Equal(page, r.DataIn[1]);
        Assert.Equal(r.DataIn.Length - 4, BinaryPrimitives.ReadUInt16BigEndian(r.DataIn.AsSpan(2)));
        return r.DataIn;
    }

    [Fact]
    public void StandardInquiryClaimsSpc4AndCarriesTheVolumeIdentity()
    {
        var r = In(_a, Cdb.Inquiry(false, 0, 255), 255);
        r.AssertGood();
        var d = r.DataIn;
        Assert.Equal(0x00, d[0]);           // direct access block device
        Assert.Equal(0x06, d[2]);           // SPC-4
        Assert.Equal(0x02, d[3] & 0x0F);    // response data format 2
        Assert.Equal(d.Length - 5, d[4]);   // ADDITIONAL LENGTH
        Assert.Equal(0x10, d[5] & 0x30);    // TPGS=01b: implicit ALUA
        Assert.Equal(0x02, d[7] & 0x02);    // CMDQUE
        Assert.Equal("TSV     ", Encoding.ASCII.GetString(d, 8, 8));
        Assert.Equal("SharedVolume    ", Encoding.ASCII.GetString(d, 16, 16));
        Assert.Equal(VolumeIdentity.Revision, Encoding.ASCII.GetString(d, 32, 4));
        Assert.Equal(0x0460, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(60))); // SPC-4 version descriptor
    }

    [Fact]
    public void InquiryIsCutToTheAllocationLengthAndToTheBuffer()
    {
        var r = In(_a, Cdb.Inquiry(false, 0, 5), 255);
        r.AssertGood();
        Assert.Equal(5, r.DataInLength);
        var small = In(_a, Cdb.Inquiry(false, 0, 255), 20, segments: 2);
        small.AssertGood();
        Assert.Equal(20, small.DataInLength);
    }

    [Fact]
    public void InquiryWithPageCodeButNoEvpdIsAnInvalidFieldAtByte2()
    {
        var r = In(_a, Cdb.Inquiry(false, 0x80, 255), 255);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 2, -1), r.FieldPointer);
    }

    [Fact]
    public void UnsupportedVpdPageAndCmddtAreRefused()
    {
        var r = In(_a, Cdb.Inquiry(true, 0xC0, 255), 255);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 2, -1), r.FieldPointer);
        var cmddt = Cdb.Inquiry(false, 0, 255);
        cmddt[1] = 0x02;
        var c = In(_a, cmddt, 255);
        c.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 1, 1), c.FieldPointer);
    }

    [Fact]
    public void EverySupportedVpdPageIsServedWithItsOwnCode()
    {
        var pages = Vpd(_a, 0x00);
        var list = pages.AsSpan(4).ToArray();
        Assert.Equal(new byte[] { 0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2 }, list);
        foreach (var p in list) Vpd(_a, p);
    }

    [Fact]
    public void UnitSerialAndDesignatorsAreTheSameOnEveryPathOfAVolume()
    {
        Assert.Equal(Vpd(_a, 0x80), Vpd(_b, 0x80));
        Assert.Equal(_volume.Identity.UnitSerial, Encoding.ASCII.GetString(Vpd(_a, 0x80), 4, _volume.Identity.UnitSerial.Length));

        var a = Designators(Vpd(_a, 0x83));
        var b = Designators(Vpd(_b, 0x83));
        // Logical unit designators (association 0) equal; the relative target port is per path.
        Assert.Equal(a.Where(d => d.Association == 0).Select(d => Convert.ToHexString(d.Value)),
                     b.Where(d => d.Association == 0).Select(d => Convert.ToHexString(d.Value)));
        var naa = a.Single(d => d.Type == 3 && d.Association == 0);
        Assert.Equal(_volume.Identity.NaaLocallyAssigned, BinaryPrimitives.ReadUInt64BigEndian(naa.Value));
        Assert.Equal(3, naa.Value[0] >> 4); // NAA 3h, locally assigned
        var t10 = a.Single(d => d.Type == 1);
        Assert.Equal("TSV     " + _volume.Identity.UnitSerial, Encoding.ASCII.GetString(t10.Value));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(a.Single(d => d.Type == 4).Value.AsSpan(2)));
        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(b.Single(d => d.Type == 4).Value.AsSpan(2)));
        Assert.Equal(0x10, a.Single(d => d.Type == 4).Association << 4); // target port association
    }

    [Fact]
    public void UnboundPathHasNoRelativeTargetPortButTheSameIdentity()
    {
        var unbound = _volume.AddPath("vol-x", null, "test");
        var d = Designators(Vpd(unbound, 0x83));
        Assert.DoesNotContain(d, x => x.Type == 4);
        Assert.Equal(Vpd(_a, 0x80), Vpd(unbound, 0x80));
    }

    [Fact]
    public void DifferentVolumesHaveDifferentIdentities()
    {
        var other = _f.CreateVolume(name: "other").AddPath("other-a", Nexus("iqn.2024-01.test:a", 1));
        Assert.NotEqual(Vpd(_a, 0x80), Vpd(other, 0x80));
        var n1 = Designators(Vpd(_a, 0x83)).Single(d => d.Type == 3).Value;
        var n2 = Designators(Vpd(other, 0x83)).Single(d => d.Type == 3).Value;
        Assert.NotEqual(n1, n2);
    }

    [Fact]
    public void NoVpdPageRevealsTheBackingPath()
    {
        string name = Path.GetFileName(_volume.BackingPath);
        foreach (byte p in new byte[] { 0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2 })
            Assert.DoesNotContain(name, Encoding.ASCII.GetString(Vpd(_a, p)));
        Assert.DoesNotContain(name, Encoding.ASCII.GetString(In(_a, Cdb.Inquiry(false, 0, 255), 255).DataIn));
    }

    [Fact]
    public void BlockLimitsAdvertiseWhatTheCommandsEnforce()
    {
        var d = Vpd(_a, 0xB0);
        Assert.Equal(0x3C, d[3]);
        Assert.Equal(1, d[4] & 1); // WSNZ
        Assert.Equal(255, d[5]);   // MAXIMUM COMPARE AND WRITE LENGTH
        Assert.Equal((uint)(_volume.MaxTransferBytes / BlockSize), BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(8)));
        // MAXIMUM UNMAP LBA COUNT: 1 GiB, but no more than 2^20 blocks (libiscsi Inquiry.BlockLimits)
        Assert.Equal(Math.Min((uint)((1 << 30) / BlockSize), 1u << 20), BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(20)));
        Assert.Equal(256u, BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(24)));
        Assert.Equal((uint)(_volume.Store.UnmapGranularity / BlockSize), BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(28)));
        Assert.Equal(0x80, d[32] & 0x80); // UGAVALID
        Assert.Equal(0xFFFFul, BinaryPrimitives.ReadUInt64BigEndian(d.AsSpan(36))); // MAXIMUM WRITE SAME LENGTH, as LIO
    }

    [Theory]
    [InlineData(64L << 10, 65536, 128u, 128u)]    // a thin LV: 64 KiB chunks, 64 KiB per discard
    [InlineData(4L << 30, 65536, 1u << 20, 128u)] // the device takes more than the 1 GiB ceiling
    [InlineData(512L, 4096, 8u, 8u)]              // never below one unmap granule
    public void UnmapLimitsComeFromTheDevicesQueue(long discardMax, int granularity, uint maxBlocks, uint granularityBlocks)
    {
        // discard_max_bytes and discard_granularity of the device's queue, in VPD B0h (512-byte blocks).
        var v = _f.CreateVolume(8 << 20, name: $"q{discardMax}-{granularity}",
            wrap: s => new FaultStore(s) { MaxUnmapBytesOverride = discardMax, UnmapGranularityOverride = granularity });
        var d = Vpd(v.AddPath("q", null), 0xB0);
        Assert.Equal(maxBlocks, BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(20)));
        Assert.Equal(granularityBlocks, BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(28)));
    }

    [Fact]
    public void ProvisioningPageFollowsTheStore()
    {
        var d = Vpd(_a, 0xB2);
        Assert.True(_volume.Store.SupportsUnmap, "ext4/tmpfs temp dirs punch holes");
        Assert.Equal(0x80 | 0x40 | 0x20 | 0x04, d[5]); // LBPU LBPWS LBPWS10 LBPRZ
        Assert.Equal(2, d[6] & 7); // thin

        var thick = _f.CreateVolume(name: "thick", wrap: s => new FaultStore(s) { Unmappable = false });
        var t = Vpd(thick.AddPath("t", null), 0xB2);
        Assert.Equal(0, t[5]);
        Assert.Equal(0, t[6] & 7);
        var b0 = Vpd(thick.AddPath("t2", null), 0xB0);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(b0.AsSpan(20)));
    }

    [Fact]
    public void ExtendedInquiryAndCharacteristicsPagesHaveTheirFixedLength()
    {
        var e = Vpd(_a, 0x86);
        Assert.Equal(0x3C, e[3]);
        Assert.Equal(0x01, e[5] & 0x07); // SIMPSUP only
        // SPC-4 7.8.7: V_SUP is bit 0 of byte 6 (a volatile cache, the page cache); NV_SUP,
        // bit 1, would claim a non-volatile cache that does not exist.
        Assert.Equal(0x01, e[6] & 0x03);
        Assert.Equal(0x3C, Vpd(_a, 0xB1)[3]);
    }

    [Fact]
    public void TestUnitReadyIsGood() => Run(_a, new byte[6]).AssertGood();

    [Theory]
    [InlineData(false, 0x70, 18)]
    [InlineData(true, 0x72, 8)]
    public void RequestSenseReportsNoSenseInTheAskedFormat(bool desc, int responseCode, int length)
    {
        var r = In(_a, [OperationCode.RequestSense, (byte)(desc ? 1 : 0), 0, 0, 252, 0], 252);
        r.AssertGood();
        Assert.Equal(length, r.DataInLength);
        Assert.Equal(responseCode, r.DataIn[0]);
        Assert.Equal(SenseCode.NoSense, SenseData.Parse(r.DataIn));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RequestSenseReportsAndClearsAPendingUnitAttention(bool desc)
    {
        _volume.Reservations.AddUnitAttentionForAll(SenseCode.CapacityDataHasChanged);
        var r = In(_a, [OperationCode.RequestSense, (byte)(desc ? 1 : 0), 0, 0, 252, 0], 252);
        r.AssertGood(); // SPC-4 REQUEST SENSE: the unit attention is the parameter data, not a CHECK CONDITION
        Assert.Equal(desc ? 0x72 : 0x70, r.DataIn[0]);
        Assert.Equal(SenseCode.CapacityDataHasChanged, SenseData.Parse(r.DataIn));
        // Consumed for this nexus only: the next command of _a runs, _b still has its own.
        Run(_a, new byte[6]).AssertGood();
        Assert.Equal(SenseCode.NoSense, SenseData.Parse(In(_a, [OperationCode.RequestSense, 0, 0, 0, 252, 0], 252).DataIn));
        Run(_b, new byte[6]).AssertCheck(SenseCode.CapacityDataHasChanged);
    }

    // ---- MODE SENSE / MODE SELECT ----

    private static int FindPage(byte[] data, int start, byte page)
    {
        for (int at = start; at < data.Length; at += 2 + data[at + 1])
            if ((data[at] & 0x3F) == page) return at;
        return -1;
    }

    [Fact]
    public void ModeSense6ReportsAllPagesWithBlockDescriptorAndDpoFua()
    {
        var r = In(_a, Cdb.ModeSense6(0x3F), 255);
        r.AssertGood();
        var d = r.DataIn;
        Assert.Equal(d.Length - 1, d[0]);
        Assert.Equal(0x10, d[2]);          // DPOFUA, not write protected
        Assert.Equal(8, d[3]);             // block descriptor length
        Assert.Equal((uint)_volume.BlockCount, BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(4)));
        Assert.Equal(BlockSize, (d[9] << 16) | (d[10] << 8) | d[11]);
        int caching = FindPage(d, 12, 0x08);
        Assert.True(caching > 0);
        Assert.Equal(0x12, d[caching + 1]);
        Assert.Equal(0x04, d[caching + 2] & 0x04); // WCE
        int control = FindPage(d, 12, 0x0A);
        Assert.Equal(0x0A, d[control + 1]);
        Assert.Equal(0x40, d[control + 5] & 0x40); // TAS
        Assert.Equal(0, d[control + 2] & 0x04);     // D_SENSE off by default
        Assert.True(FindPage(d, 12, 0x01) > 0);
    }

    [Fact]
    public void ModeSense10WithLlbaaAndDbd()
    {
        var l = In(_a, Cdb.ModeSense10(0x08, llbaa: true), 1024);
        l.AssertGood();
        Assert.Equal(1, l.DataIn[4] & 1); // LONGLBA
        Assert.Equal(16, BinaryPrimitives.ReadUInt16BigEndian(l.DataIn.AsSpan(6)));
        Assert.Equal((ulong)_volume.BlockCount, BinaryPrimitives.ReadUInt64BigEndian(l.DataIn.AsSpan(8)));
        Assert.Equal((uint)BlockSize, BinaryPrimitives.ReadUInt32BigEndian(l.DataIn.AsSpan(20)));
        Assert.Equal(0x08, l.DataIn[24]);

        var d = In(_a, Cdb.ModeSense10(0x08, dbd: true), 1024);
        d.AssertGood();
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(d.DataIn.AsSpan(6)));
        Assert.Equal(0x08, d.DataIn[8]);
        Assert.Equal(8 + 20, d.DataIn.Length);
        Assert.Equal(d.DataIn.Length - 2, BinaryPrimitives.ReadUInt16BigEndian(d.DataIn));
    }

    [Fact]
    public void ModeSenseChangeableValuesShowWceAndDSense()
    {
        var r = In(_a, Cdb.ModeSense6(0x40 | 0x3F, dbd: true), 255);
        r.AssertGood();
        var d = r.DataIn;
        Assert.Equal(0x04, d[FindPage(d, 4, 0x08) + 2]);
        Assert.Equal(0x04, d[FindPage(d, 4, 0x0A) + 2]);
        Assert.Equal(0, d[FindPage(d, 4, 0x0A) + 5]);
    }

    [Fact]
    public void ModeSenseSavedValuesAreNotSupported()
    {
        var r = In(_a, Cdb.ModeSense6(0xC0 | 0x08), 255);
        r.AssertCheck(SenseCode.SavingParametersNotSupported);
    }

    [Fact]
    public void ModeSenseOfAnUnknownPageOrSubpageIsAnInvalidField()
    {
        var r = In(_a, Cdb.ModeSense6(0x1C), 255);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 2, 5), r.FieldPointer);
        var s = In(_a, Cdb.ModeSense6(0x08, subpage: 1), 255);
        s.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 3, -1), s.FieldPointer);
    }

    [Fact]
    public void ModeSenseIsCutToTheAllocationLength()
    {
        var r = In(_a, Cdb.ModeSense6(0x3F, allocation: 10), 255);
        r.AssertGood();
        Assert.Equal(10, r.DataInLength);
    }

    private byte[] CurrentPage10(byte page)
    {
        var r = In(_a, Cdb.ModeSense10(page, dbd: true), 1024);
        r.AssertGood();
        var list = r.DataIn;
        list[0] = list[1] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
        list[3] = 0;           // device-specific: DPOFUA is reserved in MODE SELECT
        return list;
    }

    [Fact]
    public void ModeSelectTurnsTheWriteCacheOffOnEveryPath()
    {
        var list = CurrentPage10(0x08);
        list[8 + 2] &= unchecked((byte)~0x04);
        Out(_a, Cdb.ModeSelect10((ushort)list.Length), list).AssertGood();
        Assert.False(_volume.WriteCacheEnabled);
        // The other nexus hears of it once (SPC-4 6.11); the one that changed it does not.
        In(_b, Cdb.ModeSense6(0x08, dbd: true), 255).AssertCheck(SenseCode.ModeParametersChanged);
        var seen = In(_b, Cdb.ModeSense6(0x08, dbd: true), 255);
        seen.AssertGood();
        Assert.Equal(0, seen.DataIn[4 + 2] & 0x04);
        In(_a, Cdb.ModeSense6(0x08, dbd: true), 255).AssertGood();

        list[8 + 2] |= 0x04;
        Out(_b, Cdb.ModeSelect10((ushort)list.Length), list).AssertGood();
        Assert.True(_volume.WriteCacheEnabled);
        In(_a, Cdb.ModeSense6(0x08, dbd: true), 255).AssertCheck(SenseCode.ModeParametersChanged);

        // Selecting the values in force changes nothing, so nobody is told anything.
        Out(_b, Cdb.ModeSelect10((ushort)list.Length), list).AssertGood();
        In(_a, Cdb.ModeSense6(0x08, dbd: true), 255).AssertGood();
    }

    [Fact]
    public void ModeSelectOfDSenseSwitchesTheVolumeToDescriptorSense()
    {
        var list = CurrentPage10(0x0A);
        list[8 + 2] |= 0x04;
        Out(_a, Cdb.ModeSelect10((ushort)list.Length), list).AssertGood();
        Assert.True(_volume.DescriptorSense);
        // The next error on another path comes in descriptor format (the transport copies the flag).
        var r = In(_b, Cdb.Inquiry(false, 1, 255), 255);
        Assert.Equal(0x72, r.Sense[0]);
    }

    [Fact]
    public void ModeSelectOfANonChangeableFieldPointsAtIt()
    {
        var list = CurrentPage10(0x0A);
        list[8 + 3] ^= 0x02; // QERR
        var r = Out(_a, Cdb.ModeSelect10((ushort)list.Length), list);
        r.AssertCheck(SenseCode.InvalidFieldInParameterList);
        Assert.Equal((false, 8 + 3, 1), r.FieldPointer);
        Assert.False(_volume.DescriptorSense);
    }

    [Fact]
    public void ModeSelectErrors()
    {
        var list = CurrentPage10(0x08);
        var sp = Out(_a, Cdb.ModeSelect10((ushort)list.Length, sp: true), list);
        sp.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 1, 0), sp.FieldPointer);

        Out(_a, Cdb.ModeSelect10((ushort)list.Length, pf: false), list).AssertCheck(SenseCode.InvalidFieldInCdb);

        // Parameter list ends inside the page.
        Out(_a, Cdb.ModeSelect10((ushort)(list.Length - 4)), list.AsSpan(0, list.Length - 4)).AssertCheck(SenseCode.ParameterListLengthError);

        // Unknown page.
        var unknown = (byte[])list.Clone();
        unknown[8] = 0x1C;
        var u = Out(_a, Cdb.ModeSelect10((ushort)unknown.Length), unknown);
        u.AssertCheck(SenseCode.InvalidFieldInParameterList);
        Assert.Equal((false, 8, 5), u.FieldPointer);

        // Wrong page length.
        var len = (byte[])list.Clone();
        len[9] = 0x10;
        Out(_a, Cdb.ModeSelect10((ushort)len.Length), len).AssertCheck(SenseCode.InvalidFieldInParameterList);

        // Zero-length list: nothing to do.
        Run(_a, Cdb.ModeSelect10(0)).AssertGood();
    }

    [Fact]
    public void ModeSelectBlockDescriptorMustKeepTheBlockSize()
    {
        var r = In(_a, Cdb.ModeSense10(0x08), 1024);
        var list = r.DataIn;
        list[0] = list[1] = 0;
        list[3] = 0;
        Out(_a, Cdb.ModeSelect10((ushort)list.Length), list).AssertGood();
        list[8 + 6] = 0x10; // block length 4096+...
        var bad = Out(_a, Cdb.ModeSelect10((ushort)list.Length), list);
        bad.AssertCheck(SenseCode.InvalidFieldInParameterList);
        Assert.Equal((false, 8 + 5, -1), bad.FieldPointer);
    }

    [Fact]
    public void ModeSelectFlushesWhenTheCacheIsTurnedOff()
    {
        var fault = new FaultStore(null!);
        var v = _f.CreateVolume(name: "flush", wrap: s => fault = new FaultStore(s));
        var p = v.AddPath("p", null);
        var r = In(p, Cdb.ModeSense10(0x08, dbd: true), 1024);
        var list = r.DataIn;
        list[0] = list[1] = 0;
        list[3] = 0;
        list[8 + 2] &= unchecked((byte)~0x04);
        fault.FlushErrno = 5;
        Out(p, Cdb.ModeSelect10((ushort)list.Length), list).AssertCheck(SenseCode.WriteError);
        Assert.True(v.WriteCacheEnabled);
        fault.FlushErrno = null;
        // The failed flush is latched: turning the cache off (a promise that what GOOD covered
        // is durable) keeps failing until the error is cleared.
        Out(p, Cdb.ModeSelect10((ushort)list.Length), list).AssertCheck(SenseCode.WriteError);
        Assert.True(v.WriteCacheEnabled);
        v.ClearWriteError();
        Out(p, Cdb.ModeSelect10((ushort)list.Length), list).AssertGood();
        Assert.False(v.WriteCacheEnabled);
        Assert.Equal(2, fault.Flushes);
    }

    // ---- REPORT SUPPORTED OPERATION CODES ----

    private static List<(byte Op, int Sa, int CdbLength, bool Ctdp)> ParseAll(byte[] d, bool rctd)
    {
        var list = new List<(byte, int, int, bool)>();
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(d);
        Assert.Equal(d.Length - 4, length);
        for (int at = 4; at < d.Length;)
        {
            bool servactv = (d[at + 5] & 1) != 0;
            bool ctdp = (d[at + 5] & 2) != 0;
            list.Add((d[at], servactv ? BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 2)) : -1,
                BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 6)), ctdp));
            at += 8;
            if (ctdp)
            {
                Assert.Equal(0x0A, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at)));
                at += 12;
            }
        }
        Assert.All(list, e => Assert.Equal(rctd, e.Item4));
        return list;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReportAllOperationCodesListsEveryCommandIncludingReservationsAndReportLuns(bool rctd)
    {
        var r = In(_a, Cdb.Rsoc(0, rctd: rctd), 4096);
        r.AssertGood();
        var all = ParseAll(r.DataIn, rctd);
        Assert.Contains(all, e => e.Op == 0x28 && e.Sa == -1 && e.CdbLength == 10);
        Assert.Contains(all, e => e.Op == 0xA0 && e.CdbLength == 12);
        Assert.Contains(all, e => e.Op == 0x89 && e.CdbLength == 16);
        for (int sa = 0; sa < 4; sa++) Assert.Contains(all, e => e.Op == 0x5E && e.Sa == sa);
        for (int sa = 0; sa < 8; sa++) Assert.Contains(all, e => e.Op == 0x5F && e.Sa == sa);
        foreach (byte op in new byte[] { 0x16, 0x17, 0x56, 0x57, 0x42, 0x93, 0x41, 0x35, 0x91, 0x2F, 0x8F })
            Assert.Contains(all, e => e.Op == op);
        Assert.Contains(all, e => e.Op == 0x9E && e.Sa == 0x10);
        Assert.Contains(all, e => e.Op == 0x9E && e.Sa == 0x12);
        Assert.Contains(all, e => e.Op == 0xA3 && e.Sa == 0x0C);
        // Every entry is a command this target actually answers, not INVALID COMMAND OPERATION CODE.
        foreach (var e in all)
        {
            if (OperationCode.IsReservationCommand(e.Op) || e.Op == OperationCode.ReportLuns) continue;
            var cdb = new byte[e.CdbLength];
            cdb[0] = e.Op;
            if (e.Sa >= 0) cdb[1] = (byte)e.Sa;
            var x = In(_a, cdb, 512);
            Assert.False(x.Status == ScsiStatus.CheckCondition && x.Code == SenseCode.InvalidCommandOperationCode, $"{e.Op:X2}");
        }
    }

    [Fact]
    public void CdbUsageDataOfEveryCommandStartsWithItsOpcodeAndHasItsLength()
    {
        var all = ParseAll(In(_a, Cdb.Rsoc(0), 4096).DataIn, false);
        foreach (var e in all)
        {
            var r = In(_a, Cdb.Rsoc(e.Sa >= 0 ? 2 : 1, e.Op, (ushort)Math.Max(e.Sa, 0)), 512);
            r.AssertGood();
            var d = r.DataIn;
            Assert.Equal(0x03, d[1] & 0x07); // supported per standard
            int size = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(2));
            Assert.Equal(e.CdbLength, size);
            Assert.Equal(e.Op, d[4]);
            if (e.Sa >= 0) Assert.Equal(0x1F, d[5] & 0x1F); // service action field examined
            Assert.Equal(0x04, d[4 + size - 1]);             // control byte: NACA
        }
    }

    [Fact]
    public void ReportOneOperationCodeWithTimeouts()
    {
        var r = In(_a, Cdb.Rsoc(1, 0x2A, rctd: true), 512);
        r.AssertGood();
        var d = r.DataIn;
        Assert.Equal(0x80 | 0x03, d[1]);
        Assert.Equal(10, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(2)));
        Assert.Equal(new byte[] { 0x2A, 0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0xFF, 0xFF, 0x04 }, d.AsSpan(4, 10).ToArray());
        Assert.Equal(0x0A, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(14)));
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(22)) > 0);
    }

    [Fact]
    public void ReportOneOperationCodeErrors()
    {
        // Option 1 for an opcode with service actions, option 2 for one without: invalid.
        In(_a, Cdb.Rsoc(1, 0x9E), 512).AssertCheck(SenseCode.InvalidFieldInCdb);
        In(_a, Cdb.Rsoc(2, 0x28), 512).AssertCheck(SenseCode.InvalidFieldInCdb);
        In(_a, Cdb.Rsoc(5), 512).AssertCheck(SenseCode.InvalidFieldInCdb);
        // Unknown opcode or service action: "not supported", not an error.
        var u = In(_a, Cdb.Rsoc(1, 0xC7), 512);
        u.AssertGood();
        Assert.Equal(0x01, u.DataIn[1] & 0x07);
        var s = In(_a, Cdb.Rsoc(2, 0x9E, 0x13), 512);
        s.AssertGood();
        Assert.Equal(0x01, s.DataIn[1] & 0x07);
        // Option 3 works for both kinds.
        Assert.Equal(0x03, In(_a, Cdb.Rsoc(3, 0x28), 512).DataIn[1] & 7);
        Assert.Equal(0x03, In(_a, Cdb.Rsoc(3, 0x5F, 0x05), 512).DataIn[1] & 7);
        // Other MAINTENANCE IN service actions (e.g. REPORT ALIASES) are refused.
        var aliases = In(_a, [0xA3, 0x0B, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0], 1024);
        aliases.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 1, 4), aliases.FieldPointer);
    }

    [Fact]
    public void UnmapIsNotReportedWhenTheStoreCannotDeallocate()
    {
        var thick = _f.CreateVolume(name: "thick", wrap: s => new FaultStore(s) { Unmappable = false }).AddPath("t", null);
        var all = ParseAll(In(thick, Cdb.Rsoc(0), 4096).DataIn, false);
        Assert.DoesNotContain(all, e => e.Op == 0x42);
        Assert.Equal(0x01, In(thick, Cdb.Rsoc(1, 0x42), 512).DataIn[1] & 7);
    }

    // ---- START STOP UNIT / PREVENT ALLOW MEDIUM REMOVAL / SEND DIAGNOSTIC ----

    [Theory]
    [InlineData(0x01, true)]  // START
    [InlineData(0x00, true)]  // STOP (flushes)
    [InlineData(0x03, true)]  // load
    [InlineData(0x02, false)] // eject
    [InlineData(0x20, true)]  // power condition IDLE
    [InlineData(0x30, true)]  // STANDBY
    [InlineData(0x50, false)] // reserved power condition
    public void StartStopUnit(byte byte4, bool good)
    {
        var r = Run(_a, [OperationCode.StartStopUnit, 0, 0, 0, byte4, 0]);
        if (good) r.AssertGood();
        else
        {
            r.AssertCheck(SenseCode.InvalidFieldInCdb);
            Assert.Equal(4, r.FieldPointer.Byte);
        }
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(1, true)]
    [InlineData(2, false)]
    public void PreventAllowMediumRemoval(byte prevent, bool good)
    {
        var r = Run(_a, [OperationCode.PreventAllowMediumRemoval, 0, 0, 0, prevent, 0]);
        if (good) r.AssertGood();
        else r.AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void SendDiagnosticDefaultSelfTest()
    {
        Run(_a, [OperationCode.SendDiagnostic, 0x04, 0, 0, 0, 0]).AssertGood();
        Run(_a, [OperationCode.SendDiagnostic, 0x20, 0, 0, 0, 0]).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void UnknownOpcodeAndNacaAndShortCdb()
    {
        var r = Run(_a, [0x02, 0, 0, 0, 0, 0]);
        r.AssertCheck(SenseCode.InvalidCommandOperationCode);
        Assert.Equal((true, 0, -1), r.FieldPointer);
        var naca = Run(_a, [OperationCode.TestUnitReady, 0, 0, 0, 0, 0x04]);
        naca.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 5, 2), naca.FieldPointer);
        Run(_a, [OperationCode.Read10, 0, 0]).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    // ---- helpers ----

    private sealed record Designator(int Protocol, int CodeSet, bool Piv, int Association, int Type, byte[] Value);

    private static List<Designator> Designators(byte[] page)
    {
        var list = new List<Designator>();
        for (int at = 4; at < page.Length;)
        {
            int len = page[at + 3];
            list.Add(new Designator(page[at] >> 4, page[at] & 0x0F, (page[at + 1] & 0x80) != 0,
                (page[at + 1] >> 4) & 3, page[at + 1] & 0x0F, page.AsSpan(at + 4, len).ToArray()));
            at += 4 + len;
        }
        return list;
    }
}
