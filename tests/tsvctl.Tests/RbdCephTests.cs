using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Tests.Backends.Rbd;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Cli.Tests;

/// <summary>
/// The real rbd and rados tools against the one-node Ceph of scripts/ceph/start.sh: what the
/// fake answers for, the real ones do (the arguments tsvctl passes are accepted, their answers read).
/// </summary>
[Collection(CephCollection.Name)]
public sealed class RbdCephTests(CephCluster ceph) : IDisposable
{
    private readonly Sandbox _s = new() { Tools = new ProcessRunner() };
    private readonly string _image = "tsvctl-" + Guid.NewGuid().ToString("N")[..10];

    public void Dispose()
    {
        _s.Dispose();
        try { ceph.Rbd("rm", "--no-progress", $"{CephCluster.Pool}/{_image}"); }
        catch (InvalidOperationException) { } // deleted by the test
    }

    private long? Size()
    {
        try { return System.Text.Json.JsonDocument.Parse(ceph.Rbd("info", "--format", "json", $"{CephCluster.Pool}/{_image}")).RootElement.GetProperty("size").GetInt64(); }
        catch (InvalidOperationException) { return null; }
    }

    [Fact]
    public void AnImageIsCreatedGrownExportedAndDeletedWithTheRealTools()
    {
        string volume = $"rbd:{CephCluster.Pool}/{_image}";
        Assert.Equal(0, _s.Run("volume", "create", volume, "--size", "16M", "--conf", ceph.ConfPath));
        Assert.Equal(16L << 20, Size());
        Assert.Contains("\"layering\"", ceph.Rbd("info", "--format", "json", $"{CephCluster.Pool}/{_image}"));
        Assert.DoesNotContain("exclusive-lock", ceph.Rbd("info", "--format", "json", $"{CephCluster.Pool}/{_image}"));
        Assert.Equal(1, _s.Run("volume", "create", volume, "--size", "16M", "--conf", ceph.ConfPath));
        Assert.Contains("already exists", _s.ErrorLine());

        _s.Err.GetStringBuilder().Clear();
        Assert.Equal(0, _s.Run("volume", "resize", volume, "--size", "32M", "--conf", ceph.ConfPath));
        Assert.Equal(32L << 20, Size());
        Assert.Equal(1, _s.Run("volume", "resize", volume, "--size", "8M", "--conf", ceph.ConfPath));
        Assert.Contains("shrinking to 8388608 is refused", _s.ErrorLine());

        Assert.Equal(0, _s.Run("export", "loopback", "--volume", volume, "--conf", ceph.ConfPath, "--nodes", "1"));
        Assert.Contains($"/backstores/user:sharedvol create name={_image}-1 size=33554432 cfgstring=rbd/{CephCluster.Pool}/{_image};ceph_conf={ceph.ConfPath}",
            _s.Targetcli.Commands);

        // Another host serves it (here: a client that has it open, with its reservation table beside it).
        var location = RbdLocation.Create(CephCluster.Pool, _image, ceph.ConfPath);
        using (var store = RbdStore.Open(location))
        {
            ceph.Rados("-p", CephCluster.Pool, "create", RbdReservationStore.ObjectName(_image));
            _s.Err.GetStringBuilder().Clear();
            Assert.Equal(1, _s.Run("volume", "delete", volume, "--yes", "--conf", ceph.ConfPath));
            Assert.Contains($"{volume} is open on 1 client(s) (127.0.0.1:", _s.ErrorLine());
        }

        Assert.Equal(0, _s.Run("volume", "delete", volume, "--yes", "--conf", ceph.ConfPath));
        Assert.Null(Size());
        Assert.Throws<InvalidOperationException>(() => ceph.Rados("-p", CephCluster.Pool, "stat", RbdReservationStore.ObjectName(_image)));
    }

    [Fact]
    public void AMissingPoolIsTheToolsOwnMessage()
    {
        Assert.Equal(1, _s.Run("volume", "create", "rbd:no-such-pool/x", "--size", "16M", "--conf", ceph.ConfPath));
        Assert.Equal("tsvctl: rbd info failed (exit 2): rbd: error opening pool 'no-such-pool': (2) No such file or directory", _s.ErrorLine());
    }
}
