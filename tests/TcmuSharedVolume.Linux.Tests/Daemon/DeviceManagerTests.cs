using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Tests.EndToEnd;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;

namespace TcmuSharedVolume.Tests.Daemon;

/// <summary>Adoption and removal in the daemon's <c>DeviceManager</c>, with a fake configfs tree
/// and simulated rings: one bad device must cost only itself.</summary>
public sealed class DeviceManagerTests : IDisposable
{
    private readonly DaemonRig _rig = new();

    public void Dispose() => _rig.Dispose();

    private static byte Status(RingSimulator.Completion c) => c.Status;

    private static RingSimulator.Completion Run(SimulatedDevice d, byte[] cdb, byte[]? dataOut = null, int dataIn = 0) =>
        TwoPathRig.Await(d, TwoPathRig.Submit(d, cdb, dataOut, dataIn));

    [Fact]
    public void ACorruptStateFileRefusesThatVolumeOnlyAndTheGoodOneServes()
    {
        var good = _rig.Backstore(1, "good", "good.img", ";size=16M;serial=goodvol");
        var bad = _rig.Backstore(2, "bad", "bad.img", ";size=16M;serial=badvol");
        Directory.CreateDirectory(_rig.StateDirectory);
        File.WriteAllBytes(new FileReservationStore(_rig.StateDirectory, "badvol").Path, "not a reservation table"u8.ToArray());

        // Start-up order: the bad one first, so a throw would stop the good one from being adopted.
        Assert.True(_rig.Devices.Adopt(bad, existing: true) < 0);
        Assert.Equal(0, _rig.Devices.Adopt(good, existing: true));

        Assert.Equal(1, _rig.Devices.PathCount);
        Assert.Equal(1, _rig.Devices.VolumeCount);
        Assert.Null(_rig.Devices.PathOf(2, "bad"));
        // Refused: left blocked (the kernel answers BUSY), its ring never mapped, its file closed.
        Assert.Equal("1", _rig.BlockDevState(2, "bad"));
        Assert.Equal("0", _rig.BlockDevState(1, "good"));
        Assert.DoesNotContain(_rig.Opener.Mappings, m => m.Ring.Name == "user_2/bad");

        var ring = _rig.Opener.For("user_1/good").Device;
        var data = Enumerable.Repeat((byte)0x5A, 512).ToArray();
        Assert.Equal(0, Status(Run(ring, Cdb.Write10(7, 1), data)));
        var read = Run(ring, Cdb.Read10(7, 1), dataIn: 512);
        Assert.Equal(0, Status(read));
        Assert.Equal(data, read.DataIn);
    }

    [Fact]
    public void ARingThatCannotBeMappedIsRefusedAndItsVolumeClosed()
    {
        var found = _rig.Backstore(1, "v", "v.img");
        _rig.Opener.RingFailure = _ => new FormatException("UIO map size 'zz' is not a positive hexadecimal number");

        Assert.Equal(-22, _rig.Devices.Adopt(found, existing: false));
        Assert.Equal(0, _rig.Devices.PathCount);
        Assert.Equal(0, _rig.Devices.VolumeCount);
        Assert.Throws<ObjectDisposedException>(() => _rig.Opener.Stores.Single().Flush());

        // The cause fixed, the same device is adopted on the next request.
        _rig.Opener.RingFailure = _ => null;
        Assert.Equal(0, _rig.Devices.Adopt(found, existing: false));
        Assert.Equal(1, _rig.Devices.PathCount);
    }

    [Fact]
    public void AFailureAfterTheRingIsMappedReleasesTheMappingAndTheVolume()
    {
        var found = _rig.Backstore(1, "v", "v.img");
        _rig.Loop.Stop(TimeSpan.FromSeconds(10)); // the loop refuses new rings: Add throws

        Assert.True(_rig.Devices.Adopt(found, existing: false) < 0);
        Assert.True(_rig.Opener.Mappings.Single().Disposed);
        Assert.Equal(0, _rig.Devices.VolumeCount);
    }

    [Fact]
    public void ARemovedPathIsFreedOnlyAfterItsRunningCommandCompletes()
    {
        GatedStore? gate = null;
        _rig.Opener.WrapStore = s => gate = new GatedStore(s, 100 * 512, 101 * 512);
        var found = _rig.Backstore(1, "v", "v.img");
        Assert.Equal(0, _rig.Devices.Adopt(found, existing: false));
        var mapping = _rig.Opener.For("user_1/v");
        var ring = mapping.Device;

        gate!.Close();
        var data = Enumerable.Repeat((byte)0xC3, 512).ToArray();
        var write = TwoPathRig.Submit(ring, Cdb.Write10(100, 1), data);
        Assert.True(Wait.Until(() => gate.Waiting == 1), "the WRITE never reached the store");

        // netlink REMOVED while the WRITE is inside the store: answered at once, nothing freed.
        Assert.Equal(0, _rig.Devices.Remove(1, "v"));
        Assert.Equal(0, _rig.Devices.PathCount);
        Assert.Equal(1, _rig.Devices.RetiringCount);
        _rig.Devices.Tick();
        Assert.False(mapping.Disposed, "the ring was unmapped under a running command");
        Assert.Equal(1, _rig.Devices.VolumeCount);

        gate.Open();
        var done = TwoPathRig.Await(ring, write);
        Assert.Equal(0, done.Status);
        Assert.True(Wait.Until(() =>
        {
            _rig.Devices.Tick();
            return _rig.Devices.RetiringCount == 0;
        }), "the idle ring was never freed");
        Assert.True(mapping.Disposed);
        Assert.Equal(0, _rig.Devices.VolumeCount);
        Assert.Throws<ObjectDisposedException>(() => gate.Flush());

        var onDisk = new byte[512];
        using (var f = File.OpenRead(_rig.Image("v.img")))
        {
            f.Position = 100 * 512;
            f.ReadExactly(onDisk);
        }
        Assert.Equal(data, onDisk);
    }

    [Fact]
    public void ARemovedPathKeepsTheVolumeOpenForItsSiblingAndAReAddedPathShareIt()
    {
        var a = _rig.Backstore(1, "a", "shared.img");
        var b = _rig.Backstore(2, "b", "shared.img");
        Assert.Equal(0, _rig.Devices.Adopt(a, existing: false));
        Assert.Equal(0, _rig.Devices.Adopt(b, existing: false));
        Assert.Equal(1, _rig.Devices.VolumeCount);

        Assert.Equal(0, _rig.Devices.Remove(1, "a"));
        Assert.Equal(0, _rig.Devices.RetiringCount);
        Assert.Equal(1, _rig.Devices.VolumeCount);
        Assert.Equal(0, Run(_rig.Opener.For("user_2/b").Device, Cdb.TestUnitReady()).Status);
    }
}

/// <summary>A bare <see cref="IBackingStore"/> check: a disposed store refuses use (what the tests
/// above rely on to see that a volume was closed).</summary>
public sealed class DisposedStoreTests
{
    [Fact]
    public void ADisposedSparseFileStoreThrowsObjectDisposed()
    {
        var dir = Directory.CreateTempSubdirectory("tsv-store-").FullName;
        try
        {
            var store = BackingStores.Open(Path.Combine(dir, "x.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
            store.Dispose();
            Assert.Throws<ObjectDisposedException>(() => store.Flush());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
