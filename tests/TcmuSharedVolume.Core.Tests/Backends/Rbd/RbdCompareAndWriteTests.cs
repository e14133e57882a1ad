using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>
/// COMPARE AND WRITE on RBD is done by the OSD (rbd_aio_compare_and_write), so it is atomic
/// between hosts, which the volume's own write lock cannot be: two "hosts" here are two RADOS
/// clients with their own Volume on one image.
/// </summary>
[Collection(CephCollection.Name)]
public sealed class RbdCompareAndWriteTests : IDisposable
{
    private const int Bs = 512;
    private readonly List<Volume> _volumes = [];
    private readonly CephCluster _ceph;
    private readonly string _image;

    public RbdCompareAndWriteTests(CephCluster ceph)
    {
        _ceph = ceph;
        _image = ceph.CreateImage("8M");
    }

    public void Dispose()
    {
        foreach (var v in _volumes) v.Dispose();
    }

    private VolumePath Host(string name, int blockSize = Bs)
    {
        var location = RbdLocation.Create(CephCluster.Pool, _image, _ceph.ConfPath);
        var v = new Volume(location.Path, RbdStore.Open(location), blockSize, VolumeIdentity.FromBackingPath(location.Path), new InMemoryReservationStore());
        _volumes.Add(v);
        return v.AddPath(name, Nexus("iqn.2024-01.test:" + name, (ushort)(_volumes.Count)));
    }

    private static byte[] Sector(int seed)
    {
        var b = new byte[Bs];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void AdvertisesOneSectorAndRefusesMore()
    {
        var a = Host("a");
        var vpd = In(a, Cdb.Inquiry(true, 0xB0, 64), 64);
        vpd.AssertGood();
        Assert.Equal(1, vpd.DataIn[5]); // MAXIMUM COMPARE AND WRITE LENGTH
        Out(a, Cdb.CompareAndWrite(0, 2), new byte[4 * Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void LargerBlocksHaveNoCompareAndWrite()
    {
        var a = Host("a", blockSize: 4096);
        var vpd = In(a, Cdb.Inquiry(true, 0xB0, 64), 64);
        vpd.AssertGood();
        Assert.Equal(0, vpd.DataIn[5]);
        Out(a, Cdb.CompareAndWrite(0, 1), new byte[2 * 4096]).AssertCheck(SenseCode.InvalidCommandOperationCode);
        var rsoc = In(a, Cdb.Rsoc(1, OperationCode.CompareAndWrite), 64);
        rsoc.AssertGood();
        Assert.Equal(0x01, rsoc.DataIn[1] & 0x07); // SUPPORT 001b: not supported
    }

    [Fact]
    public void MiscompareReportsTheOffsetAndWritesNothing()
    {
        var a = Host("a");
        var b = Host("b");
        var old = Sector(1);
        Out(a, Cdb.Write10(77, 1), old).AssertGood();
        var expected = (byte[])old.Clone();
        expected[301] ^= 0x40;
        var r = Out(b, Cdb.CompareAndWrite(77, 1), [.. expected, .. Sector(2)], segments: 3);
        r.AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
        Assert.Equal(301UL, r.Information);
        var back = In(a, Cdb.Read10(77, 1), Bs);
        back.AssertGood();
        Assert.Equal(old, back.DataIn);

        var next = Sector(3);
        Out(b, Cdb.CompareAndWrite(77, 1, flags: 0x08), [.. old, .. next], segments: 2).AssertGood();
        back = In(a, Cdb.Read10(77, 1), Bs);
        Assert.Equal(next, back.DataIn);
    }

    [Fact]
    public void TwoHostsRacingOnOneSectorExactlyOneWins()
    {
        var hosts = new[] { Host("a"), Host("b") };
        var current = Sector(10);
        Out(hosts[0], Cdb.Write10(5, 1), current).AssertGood();
        for (int round = 0; round < 40; round++)
        {
            var results = new Result[2];
            var mine = new[] { Sector(1000 + 2 * round), Sector(1001 + 2 * round) };
            using var start = new Barrier(2);
            var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                results[i] = Out(hosts[i], Cdb.CompareAndWrite(5, 1), [.. current, .. mine[i]]);
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();

            int winners = results.Count(r => r.Status == ScsiStatus.Good);
            Assert.Equal(1, winners);
            int w = results[0].Status == ScsiStatus.Good ? 0 : 1;
            results[1 - w].AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
            var back = In(hosts[1 - w], Cdb.Read10(5, 1), Bs);
            Assert.Equal(mine[w], back.DataIn);
            current = mine[w];
        }
    }
}
