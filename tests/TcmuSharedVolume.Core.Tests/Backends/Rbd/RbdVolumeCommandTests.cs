using System.Buffers.Binary;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>
/// The whole command path on RBD: one Volume over an RbdStore, two paths (two I_T nexuses, as two
/// initiators or two multipath paths see it), commands through CommandSet.
/// </summary>
[Collection(CephCollection.Name)]
public sealed class RbdVolumeCommandTests : IDisposable
{
    private const int Bs = 512;
    private readonly CephCluster _ceph;
    private readonly Volume _volume;
    private readonly VolumePath _a;
    private readonly VolumePath _b;

    public RbdVolumeCommandTests(CephCluster ceph)
    {
        _ceph = ceph;
        string image = ceph.CreateImage("32M");
        var location = RbdLocation.Create(CephCluster.Pool, image, ceph.ConfPath);
        var store = RbdStore.Open(location);
        _volume = new Volume(location.Path, store, Bs, VolumeIdentity.FromBackingPath(location.Path), new InMemoryReservationStore());
        _a = _volume.AddPath("a", Nexus("iqn.2024-01.test:node1", 1));
        _b = _volume.AddPath("b", Nexus("iqn.2024-01.test:node2", 2));
    }

    public void Dispose() => _volume.Dispose();

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static byte[] ReadBlocks(VolumePath p, uint lba, ushort blocks)
    {
        var r = In(p, Cdb.Read10(lba, blocks), blocks * Bs, segments: 4);
        r.AssertGood();
        return r.DataIn;
    }

    [Fact]
    public void WriteOnOnePathReadsBackOnTheOther()
    {
        var data = Pattern(64 * Bs, 1);
        Out(_a, Cdb.Write10(100, 64), data, segments: 5).AssertGood();
        Assert.Equal(data, ReadBlocks(_b, 100, 64));

        var fua = Pattern(8 * Bs, 2);
        Out(_b, Cdb.Write10(8192, 8, flags: 0x08), fua, segments: 1).AssertGood(); // FUA
        Assert.Equal(fua, ReadBlocks(_a, 8192, 8));
        Run(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).AssertGood();
    }

    [Fact]
    public void ReadCapacityReportsTheImageAndThinProvisioning()
    {
        var r = In(_a, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 32), 32);
        r.AssertGood();
        Assert.Equal((32UL << 20) / Bs - 1, BinaryPrimitives.ReadUInt64BigEndian(r.DataIn));
        Assert.Equal((uint)Bs, BinaryPrimitives.ReadUInt32BigEndian(r.DataIn.AsSpan(8)));
        Assert.Equal(0xC0, r.DataIn[14] & 0xC0); // LBPME and LBPRZ
    }

    [Fact]
    public void UnmapOnOnePathReadsZeroesOnTheOther()
    {
        var data = Pattern(8 << 20, 3);
        for (uint lba = 0; lba < data.Length / Bs; lba += 2048)
            Out(_a, Cdb.Write10(lba, 2048), data.AsSpan((int)lba * Bs, 2048 * Bs), segments: 8).AssertGood();
        // The whole second object, and 3 blocks inside the first.
        var list = Cdb.UnmapList((8192, 8192), (17, 3));
        Out(_a, Cdb.Unmap((ushort)list.Length), list).AssertGood();

        Assert.All(ReadBlocks(_b, 8192, 64), x => Assert.Equal(0, x));
        Assert.All(ReadBlocks(_b, 17, 3), x => Assert.Equal(0, x));
        Assert.Equal(data.AsSpan(16 * Bs, Bs).ToArray(), ReadBlocks(_b, 16, 1));
        Assert.Equal(data.AsSpan(20 * Bs, Bs).ToArray(), ReadBlocks(_b, 20, 1));

        // GET LBA STATUS from the image's allocation: the freed object and the never written
        // rest of the image are one deallocated run; the object before it is mapped.
        var s = In(_b, Cdb.ServiceActionIn16(OperationCode.ServiceActionGetLbaStatus, 8192, 24), 24);
        s.AssertGood();
        Assert.Equal(8192UL, BinaryPrimitives.ReadUInt64BigEndian(s.DataIn.AsSpan(8)));
        Assert.Equal((uint)((32 << 20) - (4 << 20)) / Bs, BinaryPrimitives.ReadUInt32BigEndian(s.DataIn.AsSpan(16)));
        Assert.Equal(1, s.DataIn[20] & 0x0F); // deallocated
        s = In(_b, Cdb.ServiceActionIn16(OperationCode.ServiceActionGetLbaStatus, 0, 24), 24);
        s.AssertGood();
        Assert.Equal(8192u, BinaryPrimitives.ReadUInt32BigEndian(s.DataIn.AsSpan(16)));
        Assert.Equal(0, s.DataIn[20] & 0x0F); // mapped
    }

    [Fact]
    public void CompareAndWriteOnTheImage()
    {
        var old = Pattern(Bs, 4);
        var @new = Pattern(Bs, 5);
        Out(_a, Cdb.Write10(40, 1), old).AssertGood();
        Out(_b, Cdb.CompareAndWrite(40, 1), [.. old, .. @new]).AssertGood();
        Assert.Equal(@new, ReadBlocks(_a, 40, 1));
        var r = Out(_a, Cdb.CompareAndWrite(40, 1), [.. old, .. Pattern(Bs, 6)]);
        r.AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
        Assert.Equal(@new, ReadBlocks(_b, 40, 1));
    }

    [Fact]
    public void ABlocklistedHostAnswersNotReady()
    {
        Out(_a, Cdb.Write10(0, 8), Pattern(8 * Bs, 7)).AssertGood();
        string address = RbdStoreTests.BlocklistAddress(((RbdStore)_volume.Store).ClientAddresses);
        _ceph.Ceph("osd", "blocklist", "add", address, "600");
        try
        {
            RbdStoreTests.FailsOnceTheOsdKnows(() => _volume.Store.Write(new byte[Bs], 0, forceUnitAccess: false));
            // NOT READY, LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE: the initiator tries another path.
            Out(_a, Cdb.Write10(0, 8), new byte[8 * Bs]).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
            In(_b, Cdb.Read10(0, 8), 8 * Bs).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
            Run(_b, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        }
        finally
        {
            _ceph.Ceph("osd", "blocklist", "rm", address);
        }
    }
}
