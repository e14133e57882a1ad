using System.Buffers.Binary;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>
/// ALUA (SPC-4 5.15): REPORT TARGET PORT GROUPS byte by byte, one group per host, both access
/// modes, and INQUIRY/VPD 83h agreeing with it; implicit only, so no SET TARGET PORT GROUPS.
/// </summary>
public sealed class TargetPortGroupsTests : IDisposable
{
    private const byte AO = 0x0, AN = 0x1;
    private readonly ScsiFixture _f = new();

    /// <summary>REPORT TARGET PORT GROUPS: format 0 (length only) or 1 (extended header).</summary>
    private static byte[] RtpgCdb(int format = 1, uint allocation = 4096)
    {
        var c = new byte[12];
        c[0] = OperationCode.MaintenanceIn;
        c[1] = (byte)((format << 5) | OperationCode.ServiceActionReportTargetPortGroups);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), allocation);
        return c;
    }

    private sealed record Group(byte State, bool Preferred, byte Supported, ushort Id, byte Status, ushort[] Ports);

    /// <summary>Parses the parameter data the way initiators do (sg_rtpg, Linux scsi_dh_alua):
    /// RETURN DATA LENGTH + 4 bytes in all, descriptors after the header.</summary>
    private static Group[] Parse(byte[] d, int format)
    {
        int end = (int)BinaryPrimitives.ReadUInt32BigEndian(d) + 4;
        Assert.Equal(d.Length, end);
        int at = 4;
        if (format == 1)
        {
            Assert.Equal(0x10, d[4] & 0x70); // FORMAT TYPE 001b
            at = 8;
        }
        var groups = new List<Group>();
        while (at < end)
        {
            int count = d[at + 7];
            var ports = new ushort[count];
            for (int i = 0; i < count; i++) ports[i] = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 8 + 4 * i + 2));
            groups.Add(new Group((byte)(d[at] & 0x0F), (d[at] & 0x80) != 0, d[at + 1],
                BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 2)), d[at + 5], ports));
            at += 8 + 4 * count;
        }
        Assert.Equal(end, at);
        return [.. groups];
    }

    private static Group[] Rtpg(VolumePath path, int format = 1)
    {
        var r = In(path, RtpgCdb(format), 4096);
        r.AssertGood();
        return Parse(r.DataIn, format);
    }

    // ---- one host ----

    [Fact]
    public void SingleHostWithoutHostIdIsGroupOneWithEveryBoundPortAscending()
    {
        var v = _f.CreateVolume();
        var b = v.AddPath("b", Nexus("iqn.2024-01.test:b", 2));
        var a = v.AddPath("a", Nexus("iqn.2024-01.test:a", 1));
        v.AddPath("c", Nexus("iqn.2024-01.test:c", 1)); // another initiator through port 1
        v.AddPath("x", null, "not yet bound");           // its port is not known
        foreach (int format in new[] { 0, 1 })
        {
            var g = Assert.Single(Rtpg(a, format));
            Assert.Equal((AO, false, (byte)0x03, (ushort)1, (byte)0x00), (g.State, g.Preferred, g.Supported, g.Id, g.Status));
            Assert.Equal(new ushort[] { 1, 2 }, g.Ports);
        }
        Assert.Equal(In(a, RtpgCdb(), 4096).DataIn, In(b, RtpgCdb(), 4096).DataIn); // the same through every port
    }

    [Fact]
    public void RtpgBytesSingleHostExtendedHeader()
    {
        var v = _f.CreateVolume();
        var a = v.AddPath("a", Nexus("iqn.2024-01.test:a", 1));
        v.AddPath("b", Nexus("iqn.2024-01.test:b", 2));
        var r = In(a, RtpgCdb(1), 4096);
        r.AssertGood();
        byte[] expected =
        [
            0, 0, 0, 20,          // RETURN DATA LENGTH: 24 bytes in all, less the field itself
            0x10, 0, 0, 0,        // FORMAT TYPE 001b, IMPLICIT TRANSITION TIME 0
            0x00, 0x03, 0, 1,     // Active/Optimized, PREF 0; AO_SUP|AN_SUP; group 1
            0, 0x00, 0, 2,        // reserved, STATUS CODE 0, vendor, TARGET PORT COUNT 2
            0, 0, 0, 1,           // relative target port 1
            0, 0, 0, 2,           // relative target port 2
        ];
        Assert.Equal(expected, r.DataIn);
        var lengthOnly = In(a, RtpgCdb(0), 4096);
        lengthOnly.AssertGood();
        Assert.Equal([0, 0, 0, 16, .. expected.AsSpan(8)], lengthOnly.DataIn);
    }

    [Fact]
    public void HostIdNamesTheGroupAndOptimizedHostSetsTheState()
    {
        var v = _f.CreateVolume();
        v.PortGroups.Configure(hostId: 3, optimizedHost: null);
        var a = v.AddPath("a", Nexus("iqn.2024-01.test:a", 3 * 1024 + 1));
        Assert.Equal(new ushort[] { 3 }, Rtpg(a).Select(g => g.Id));
        Assert.Equal(AO, Rtpg(a)[0].State);

        var w = _f.CreateVolume(name: "w");
        w.PortGroups.Configure(hostId: 3, optimizedHost: 3);
        var wa = w.AddPath("a", Nexus("iqn.2024-01.test:a", 3 * 1024 + 1));
        Assert.Equal(AO, Rtpg(wa)[0].State);

        var n = _f.CreateVolume(name: "n");
        n.PortGroups.Configure(hostId: 3, optimizedHost: 1);
        var na = n.AddPath("a", Nexus("iqn.2024-01.test:a", 3 * 1024 + 1));
        Assert.Equal(AN, Rtpg(na)[0].State); // another host is the optimized one
    }

    [Fact]
    public void OutOfRangeHostIdsAreRefused()
    {
        var v = _f.CreateVolume();
        Assert.Throws<ArgumentOutOfRangeException>(() => v.PortGroups.Configure(64, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => v.PortGroups.Configure(1, 0));
    }

    // ---- INQUIRY and VPD 83h agree with RTPG ----

    private static (ushort? Rtpi, ushort? Group, int GroupPiv) TargetPortDesignators(VolumePath p)
    {
        var r = In(p, Cdb.Inquiry(true, 0x83, 1024), 1024);
        r.AssertGood();
        var page = r.DataIn;
        ushort? rtpi = null, group = null;
        int piv = -1;
        for (int at = 4; at < page.Length; at += 4 + page[at + 3])
        {
            int association = (page[at + 1] >> 4) & 3, type = page[at + 1] & 0x0F;
            if (association != 1) continue;
            Assert.Equal(4, page[at + 3]);
            Assert.Equal(1, page[at] & 0x0F); // binary
            ushort value = BinaryPrimitives.ReadUInt16BigEndian(page.AsSpan(at + 6));
            if (type == 4) rtpi = value;
            if (type == 5) (group, piv) = (value, page[at + 1] >> 7);
        }
        return (rtpi, group, piv);
    }

    [Fact]
    public void InquiryClaimsImplicitAluaAndVpd83NamesTheGroupThatListsThePort()
    {
        var v = _f.CreateVolume();
        v.PortGroups.Configure(hostId: 2, optimizedHost: null);
        var a = v.AddPath("a", Nexus("iqn.2024-01.test:a", 2049));
        var b = v.AddPath("b", Nexus("iqn.2024-01.test:b", 2050));
        var std = In(a, Cdb.Inquiry(false, 0, 255), 255);
        std.AssertGood();
        Assert.Equal(0x10, std.DataIn[5] & 0x30); // TPGS=01b: implicit only, so no STPG

        var groups = Rtpg(a);
        foreach (var p in new[] { a, b })
        {
            var (rtpi, group, piv) = TargetPortDesignators(p);
            Assert.Equal(p.Nexus!.Target.RelativeTargetPortId, rtpi);
            Assert.Equal(1, piv);
            var g = Assert.Single(groups, x => x.Id == group);
            Assert.Contains(rtpi!.Value, g.Ports);
        }
    }

    [Fact]
    public void AnUnboundPathNamesItsHostsGroupButNoPort()
    {
        var v = _f.CreateVolume();
        v.PortGroups.Configure(hostId: 5, optimizedHost: null);
        var x = v.AddPath("x", null, "not yet bound");
        var (rtpi, group, piv) = TargetPortDesignators(x);
        Assert.Null(rtpi);
        Assert.Equal((ushort)5, group);
        Assert.Equal(0, piv);
        var g = Assert.Single(Rtpg(x));
        Assert.Equal((ushort)5, g.Id);
        Assert.Empty(g.Ports);
    }

    // ---- the CDB ----

    [Fact]
    public void TheAllocationLengthCutsTheDataButNotTheReturnDataLength()
    {
        var v = _f.CreateVolume();
        var a = v.AddPath("a", Nexus("iqn.2024-01.test:a", 1));
        v.AddPath("b", Nexus("iqn.2024-01.test:b", 2));
        var full = In(a, RtpgCdb(1, 4096), 4096).DataIn;
        foreach (uint allocation in new uint[] { 0, 2, 4, 6, 8, 23 })
        {
            var r = In(a, RtpgCdb(1, allocation), 4096);
            r.AssertGood(); // SPC-4 4.2.5.6: never an error
            Assert.Equal(allocation, (uint)r.DataInLength);
            Assert.Equal(full.AsSpan(0, (int)allocation).ToArray(), r.DataIn);
        }
        // And the fabric's buffer: a smaller Data-In buffer than the allocation length.
        var small = In(a, RtpgCdb(1, 4096), 12, segments: 2);
        small.AssertGood();
        Assert.Equal(full.AsSpan(0, 12).ToArray(), small.DataIn);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(7)]
    public void AnUnknownParameterDataFormatIsAnInvalidField(int format)
    {
        var a = _f.CreateVolume().AddPath("a", Nexus("iqn.2024-01.test:a", 1));
        var r = In(a, RtpgCdb(format), 4096);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 1, 7), r.FieldPointer);
    }

    [Fact]
    public void SetTargetPortGroupsIsNotSupported()
    {
        var a = _f.CreateVolume().AddPath("a", Nexus("iqn.2024-01.test:a", 1));
        byte[] stpg = [0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0];
        var r = Out(a, stpg, new byte[12]);
        r.AssertCheck(SenseCode.InvalidCommandOperationCode);
    }

    [Fact]
    public void ReportSupportedOperationCodesListsRtpgAndNoStpg()
    {
        var a = _f.CreateVolume().AddPath("a", Nexus("iqn.2024-01.test:a", 1));
        var one = In(a, Cdb.Rsoc(2, OperationCode.MaintenanceIn, OperationCode.ServiceActionReportTargetPortGroups), 512);
        one.AssertGood();
        Assert.Equal(0x03, one.DataIn[1] & 0x07); // supported as the standard says
        Assert.Equal(12, BinaryPrimitives.ReadUInt16BigEndian(one.DataIn.AsSpan(2)));
        Assert.Equal(new byte[] { 0xA3, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0x04 }, one.DataIn.AsSpan(4, 12).ToArray());

        var all = In(a, Cdb.Rsoc(0), 4096);
        all.AssertGood();
        var d = all.DataIn;
        var listed = new List<(byte, ushort)>();
        for (int at = 4; at < d.Length; at += 8) listed.Add((d[at], BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 2))));
        Assert.Contains(((byte)0xA3, (ushort)0x0A), listed);
        Assert.DoesNotContain(listed, e => e.Item1 == 0xA4);
        Assert.Equal(0x01, In(a, Cdb.Rsoc(2, 0xA4, 0x0A), 512).DataIn[1] & 0x07); // not supported
    }

    // ---- several hosts ----

    /// <summary>The shared records of <see cref="IPortGroupExchange"/>, as RADOS xattrs would hold them.</summary>
    private sealed class SharedRecords : IPortGroupExchange
    {
        public readonly Dictionary<ushort, ushort[]> Records = [];
        public Exception? Failure;

        public void PublishPorts(ushort group, IReadOnlyList<ushort> ports)
        {
            if (Failure is { } e) throw e;
            lock (Records) Records[group] = [.. ports];
        }

        public IReadOnlyList<PortGroupRecord> ReadPortGroups()
        {
            if (Failure is { } e) throw e;
            lock (Records) return [.. Records.Where(r => r.Value.Length > 0).Select(r => new PortGroupRecord(r.Key, r.Value))];
        }
    }

    /// <summary>The table side of a volume several hosts serve, reduced to what these tests need:
    /// one host's view of the shared port records (no reservation command runs here).</summary>
    private sealed class ClusterStoreStub(SharedRecords records) : IClusterReservationStore, IPortGroupExchange
    {
        public ClusterTable Join(Func<ClusterTable, bool> apply) => ClusterTable.Initial;
        public bool TryCommit(ClusterTable next, out ClusterTable current) => throw new NotSupportedException();
        public bool Announce(ClusterTable committed) => throw new NotSupportedException();
        public ClusterTable? LastKnown() => null;
        public void PublishPorts(ushort group, IReadOnlyList<ushort> ports) => records.PublishPorts(group, ports);
        public IReadOnlyList<PortGroupRecord> ReadPortGroups() => records.ReadPortGroups();
        public void Dispose() { }
    }

    private readonly List<Volume> _hosts = [];

    /// <summary>The volume as host <paramref name="hostId"/> serves it, with one path per port given.</summary>
    private VolumePath Host(SharedRecords records, int hostId, int? optimizedHost, params ushort[] localPorts)
    {
        string path = Path.Combine(_f.Directory, $"host{hostId}-{_hosts.Count}.img");
        var store = SparseFileStore.Open(path, new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
        var v = new Volume(path, store, BlockSize, VolumeIdentity.FromBackingPath(path), new ClusterStoreStub(records));
        _hosts.Add(v);
        v.PortGroups.Configure(hostId, optimizedHost);
        VolumePath? first = null;
        foreach (ushort local in localPorts)
        {
            var p = v.AddPath($"h{hostId}-{local}", Nexus("iqn.2024-01.test:node" + local, (ushort)(hostId * 1024 + local)));
            first ??= p;
        }
        return first!;
    }

    /// <summary>What the refresh timer does, in a known order.</summary>
    private static void Exchange(params VolumePath[] hosts)
    {
        foreach (var h in hosts) h.Volume.PortGroups.Refresh();
        foreach (var h in hosts) h.Volume.PortGroups.Refresh();
    }

    [Theory]
    [InlineData(null, AO, AO)]
    [InlineData(2, AN, AO)]
    [InlineData(1, AO, AN)]
    public void TwoHostsEachListBothGroupsWithTheStateOfTheMode(int? optimizedHost, byte state1, byte state2)
    {
        var records = new SharedRecords();
        var h1 = Host(records, 1, optimizedHost, 1, 2);
        var h2 = Host(records, 2, optimizedHost, 1);
        Exchange(h1, h2);
        foreach (var through in new[] { h1, h2 })
        {
            var groups = Rtpg(through);
            Assert.Equal(new ushort[] { 1, 2 }, groups.Select(g => g.Id));
            Assert.Equal(new ushort[] { 1025, 1026 }, groups[0].Ports);
            Assert.Equal(new ushort[] { 2049 }, groups[1].Ports);
            Assert.Equal(state1, groups[0].State);
            Assert.Equal(state2, groups[1].State);
            Assert.All(groups, g => Assert.Equal(0x03, g.Supported));
        }
    }

    [Fact]
    public void RtpgBytesTwoHostsOneOptimized()
    {
        var records = new SharedRecords();
        var h1 = Host(records, 1, 2, 1);
        var h2 = Host(records, 2, 2, 3);
        Exchange(h1, h2);
        byte[] expected =
        [
            0, 0, 0, 28,
            0x10, 0, 0, 0,
            0x01, 0x03, 0, 1, 0, 0, 0, 1,   // group 1 Active/Non-optimized, one port
            0, 0, 0x04, 0x01,               // 1025
            0x00, 0x03, 0, 2, 0, 0, 0, 1,   // group 2 Active/Optimized, one port
            0, 0, 0x08, 0x03,               // 2051
        ];
        Assert.Equal(expected, In(h1, RtpgCdb(1), 4096).DataIn);
        Assert.Equal(expected, In(h2, RtpgCdb(1), 4096).DataIn);
    }

    [Fact]
    public void ThisHostsGroupIsCurrentAndTheOthersFollowTheirRecords()
    {
        var records = new SharedRecords();
        var h1 = Host(records, 1, null, 1);
        var h3 = Host(records, 3, null, 1);
        Exchange(h1, h3);
        // A port joins host 1: host 1 lists it at once, host 3 once it has read the records.
        h1.Volume.AddPath("late", Nexus("iqn.2024-01.test:late", 1024 + 7));
        Assert.Equal(new ushort[] { 1025, 1031 }, Rtpg(h1)[0].Ports);
        Exchange(h1, h3);
        Assert.Equal(new ushort[] { 1025, 1031 }, Rtpg(h3)[0].Ports);

        // The records cannot be reached: the last ones read stay, this host's group is live.
        records.Failure = new IOException("cluster unreachable");
        h3.Volume.AddPath("late3", Nexus("iqn.2024-01.test:late3", 3 * 1024 + 9));
        Exchange(h1, h3);
        var groups = Rtpg(h3);
        Assert.Equal(new ushort[] { 1, 3 }, groups.Select(g => g.Id));
        Assert.Equal(new ushort[] { 3073, 3081 }, groups[1].Ports);
        records.Failure = null;

        // A host that stops serving the volume withdraws its group.
        h1.Volume.Dispose();
        _hosts.Remove(h1.Volume);
        Exchange(h3);
        Assert.Equal(new ushort[] { 3 }, Rtpg(h3).Select(g => g.Id));
    }

    [Fact]
    public void ATableOfThisHostAlonePublishesNothing()
    {
        var v = _f.CreateVolume();
        v.PortGroups.Configure(hostId: 1, optimizedHost: null);
        v.AddPath("a", Nexus("iqn.2024-01.test:a", 1025));
        v.PortGroups.Refresh(); // no exchange: nothing to do, nothing thrown
        Assert.Empty(v.PortGroups.Remote);
    }

    [Theory]
    [InlineData("1", "1025,1026", new ushort[] { 1025, 1026 })]
    [InlineData("63", "2,1,2", new ushort[] { 1, 2 })]
    [InlineData("0", "1", null)]
    [InlineData("64", "1", null)]
    [InlineData("x", "1", null)]
    [InlineData("1", "1,,2", null)]
    [InlineData("1", "0", null)]
    [InlineData("1", "65536", null)]
    public void StoredPortRecordsAreParsedStrictly(string group, string ports, ushort[]? expected)
    {
        var record = RbdReservationStore.ParsePorts(group, ports);
        if (expected is null) Assert.Null(record);
        else Assert.Equal(expected, record!.Ports);
    }

    public void Dispose()
    {
        foreach (var v in _hosts) v.Dispose();
        _f.Dispose();
    }
}
