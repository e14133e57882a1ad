using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>
/// READ and WRITE on RBD as the event loop runs them (a transport that lets commands finish
/// later): started with rbd_aio_* and finished by librbd's completion callback, against the
/// real one-node Ceph.
/// </summary>
[Collection(CephCollection.Name)]
public sealed class RbdAsyncCommandTests : IDisposable
{
    private const int Bs = 512;
    private readonly CephCluster _ceph;
    private readonly string _image;
    private readonly Volume _volume;
    private readonly VolumePath _a;

    public RbdAsyncCommandTests(CephCluster ceph)
    {
        _ceph = ceph;
        _image = ceph.CreateImage("16M");
        var location = RbdLocation.Create(CephCluster.Pool, _image, ceph.ConfPath);
        _volume = new Volume(location.Path, RbdStore.Open(location), Bs, VolumeIdentity.FromBackingPath(location.Path), new InMemoryReservationStore());
        _a = _volume.AddPath("a", Nexus("iqn.2024-01.test:node1", 1));
    }

    public void Dispose() => _volume.Dispose();

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void ReadsAndWritesFinishOnLibrbdsThread()
    {
        var data = Pattern(64 * Bs, 1);
        var w = OutLater(_a, Cdb.Write10(2048, 64), data, segments: 5); // rbd_aio_writev
        Assert.True(w.Later);
        w.Result.AssertGood();
        var r = InLater(_a, Cdb.Read10(2048, 64), 64 * Bs, segments: 3); // rbd_aio_readv
        Assert.True(r.Later);
        r.Result.AssertGood();
        Assert.Equal(data, r.Result.DataIn);

        // FUA in one segment: rbd_aio_write2 with the FUA flag, in the cluster when it returns.
        var fua = Pattern(8 * Bs, 2);
        var f = OutLater(_a, Cdb.Write10(16, 8, flags: 0x08), fua, segments: 1);
        Assert.True(f.Later);
        f.Result.AssertGood();
        using (var other = RbdStore.Open(CephCluster.Pool, _image, _ceph.ConfPath))
        {
            var back = new byte[fua.Length];
            other.Read(back, 16 * Bs);
            Assert.Equal(fua, back);
        }
        // FUA in several segments has no asynchronous librbd call: written and flushed at once.
        var many = OutLater(_a, Cdb.Write10(32, 8, flags: 0x08), Pattern(8 * Bs, 3), segments: 4);
        Assert.False(many.Later);
        many.Result.AssertGood();
        Assert.Equal(0, _a.InFlight);
    }

    [Fact]
    public unsafe void NothingIsAllocatedPerCommandOnEitherThread()
    {
        using var data = new NativeData(4096, segments: 1);
        var command = new ScsiCommand();
        var done = new LaterCompletion();
        var read10 = Cdb.Read10(0, 8);
        var write10 = Cdb.Write10(0, 8);
        long issuing = 0, finishingFirst = 0, finishingChanged = 0;
        int notLater = 0, notGood = 0, timedOut = 0;
        Thread? finishing = null;
        // No assertion inside the loop: they may allocate, on this thread.
        for (int i = 0; i < 240; i++)
        {
            if (i == 40) issuing = GC.GetAllocatedBytesForCurrentThread();
            var cdb = (i & 1) == 0 ? write10 : read10;
            cdb[5] = (byte)(i * 8); // LBA low byte: 4 KiB steps
            command.Reset();
            command.SetCdb(cdb);
            command.Data = data.Buffer;
            command.Completion = done;
            done.Reset();
            if (CommandSet.Execute(_a, command)) notLater++;
            else if (!done.Wait(TimeSpan.FromSeconds(30))) timedOut++;
            if (command.Status != ScsiStatus.Good) notGood++;
            if (i == 40)
            {
                finishing = done.FinishedOn;
                finishingFirst = done.AllocatedOnThatThread;
            }
            else if (i > 40 && done.FinishedOn == finishing && done.AllocatedOnThatThread != finishingFirst)
            {
                finishingChanged = done.AllocatedOnThatThread - finishingFirst;
            }
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - issuing;
        Assert.Equal(0, notLater + timedOut + notGood);
        Assert.Equal(0, allocated);
        Assert.Equal(0, finishingChanged); // librbd's thread, in our completion
        Assert.NotEqual(Thread.CurrentThread, finishing);
    }

    [Fact]
    public void ABlocklistedHostsCommandsFinishNotReady()
    {
        OutLater(_a, Cdb.Write10(0, 8), Pattern(8 * Bs, 4)).Result.AssertGood();
        string address = RbdStoreTests.BlocklistAddress(((RbdStore)_volume.Store).ClientAddresses);
        _ceph.Ceph("osd", "blocklist", "add", address, "600");
        try
        {
            RbdStoreTests.FailsOnceTheOsdKnows(() => _volume.Store.Write(new byte[Bs], 0, forceUnitAccess: false));
            var w = OutLater(_a, Cdb.Write10(0, 8), new byte[8 * Bs]);
            Assert.True(w.Later);
            w.Result.AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
            var r = InLater(_a, Cdb.Read10(0, 8), 8 * Bs);
            Assert.True(r.Later);
            r.Result.AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
            Assert.Equal(0, _a.InFlight);
        }
        finally
        {
            _ceph.Ceph("osd", "blocklist", "rm", address);
        }
    }
}
