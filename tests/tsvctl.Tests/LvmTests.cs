using TcmuSharedVolume.Cli;

namespace TcmuSharedVolume.Cli.Tests;

public sealed class LvmVolumeTests : IDisposable
{
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    [Fact]
    public void CreatesAThinLvWithLvcreateAndPrintsThePathToExport()
    {
        Assert.Equal(0, _s.Run("volume", "create", "lvm:vg/db", "--size", "100M", "--thin", "pool"));

        Assert.Contains("lvcreate --yes --wipesignatures y --activate y --name db --type thin --virtualsize 104857600b --thinpool pool vg", _s.Lvm.Commands);
        Assert.Equal((104857600L, "thin"), _s.Lvm.Volumes["vg/db"]);
        Assert.StartsWith("created /dev/vg/db (104857600 bytes, thin LV in pool vg/pool)", _s.Out.ToString());
    }

    [Fact]
    public void CreatesAThickLvAndReportsTheSizeLvmRoundedTo()
    {
        Assert.Equal(0, _s.Run("volume", "create", "lvm:vg/thick", "--size", "5M"));

        Assert.Contains("lvcreate --yes --wipesignatures y --activate y --name thick --zero y --size 5242880b vg", _s.Lvm.Commands);
        Assert.Contains("created /dev/vg/thick (8388608 bytes, thick LV)", _s.Out.ToString());
    }

    [Fact]
    public void RefusesAnExistingLvAndRunsNoLvcreate()
    {
        _s.Lvm.Volumes["vg/db"] = (4 << 20, "linear");

        Assert.Equal(1, _s.Run("volume", "create", "lvm:vg/db", "--size", "1G"));

        Assert.Contains("already exists; refusing to touch it", _s.ErrorLine());
        Assert.DoesNotContain(_s.Lvm.Commands, c => c.StartsWith("lvcreate", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("lvm:vg", 2, "must be lvm:VG/NAME")]
    [InlineData("lvm:vg/-x", 2, "not start with '-'")]
    [InlineData("lvm:vg/a;b", 2, "must be 1-127 of")]
    [InlineData("lvm:other/x", 1, "volume group 'other' not found")]
    public void BadNamesAndMissingGroupsAreClearErrors(string spec, int exit, string message)
    {
        Assert.Equal(exit, _s.Run("volume", "create", spec, "--size", "1G"));
        Assert.Contains(message, _s.ErrorLine());
        Assert.DoesNotContain(_s.Lvm.Commands, c => c.StartsWith("lvcreate", StringComparison.Ordinal));
    }

    [Fact]
    public void TheThinPoolMustBeAThinPool()
    {
        _s.Lvm.Volumes["vg/plain"] = (4 << 20, "linear");
        Assert.Equal(1, _s.Run("volume", "create", "lvm:vg/x", "--size", "1G", "--thin", "plain"));
        Assert.Contains("vg/plain is not a thin pool", _s.ErrorLine());
        Assert.Equal(1, _s.Run("volume", "create", "lvm:vg/x", "--size", "1G", "--thin", "nopool"));
        Assert.False(_s.Lvm.Volumes.ContainsKey("vg/x"));
    }

    [Fact]
    public void ThinIsOnlyForLvs()
    {
        Assert.Equal(2, _s.Run("volume", "create", Path.Combine(_s.Dir, "f.img"), "--size", "1G", "--thin", "pool"));
        Assert.Contains("--thin is for LVM volumes", _s.ErrorLine());
    }

    [Fact]
    public void AnLvmFailureShowsItsFirstErrorLineAndExitCode()
    {
        _s.Lvm.Fail = "lvcreate";
        Assert.Equal(1, _s.Run("volume", "create", "lvm:vg/big", "--size", "1G"));
        Assert.Equal("tsvctl: lvcreate failed (exit 5): Insufficient free space: 256 extents needed, but only 10 available", _s.ErrorLine());
    }

    [Fact]
    public void ResizeExtendsTheLvAndWritesDevSizeOnEveryBackstoreOfIt()
    {
        _s.Lvm.Volumes["vg/db"] = (64 << 20, "thin");
        _s.Backstore(1, "db-1", "sharedvol//dev/vg/db;initiator=iqn.2024-01.org.example%3Anode1");
        _s.Backstore(2, "db-2", "sharedvol//dev/vg/db;initiator=iqn.2024-01.org.example%3Anode2");
        _s.Backstore(3, "other-1", "sharedvol//dev/vg/other");

        Assert.Equal(0, _s.Run("volume", "resize", "lvm:vg/db", "--size", "130M"));

        Assert.Contains("lvextend --yes --size 136314880b vg/db", _s.Lvm.Commands);
        long made = 132L << 20; // whole 4 MiB extents
        Assert.Equal(made.ToString(), _s.DevSize(1, "db-1"));
        Assert.Equal(made.ToString(), _s.DevSize(2, "db-2"));
        Assert.Equal("", _s.DevSize(3, "other-1"));
        Assert.Equal(["saveconfig"], _s.Targetcli.Commands);
        Assert.Contains($"resized /dev/vg/db to {made} bytes; 2 path(s) told: db-1, db-2", _s.Out.ToString());
    }

    [Fact]
    public void ResizeNeverShrinks()
    {
        _s.Lvm.Volumes["vg/db"] = (64 << 20, "thin");
        Assert.Equal(1, _s.Run("volume", "resize", "lvm:vg/db", "--size", "32M"));
        Assert.Contains("shrinking to 33554432 is refused", _s.ErrorLine());
        Assert.DoesNotContain(_s.Lvm.Commands, c => c.StartsWith("lvextend", StringComparison.Ordinal));
    }

    [Fact]
    public void ResizeGrowsAFileThatIsNotExportedSparse()
    {
        var path = _s.Volume("grow.img", 1 << 20);
        Assert.Equal(0, _s.Run("volume", "resize", path, "--size", "4M"));
        Assert.Equal(4 << 20, new FileInfo(path).Length);
        Assert.Contains("(not exported)", _s.Out.ToString());
    }

    [Fact]
    public void ResizeOfAnExportedFileLeavesTheGrowingToTheDaemon()
    {
        // The daemon grows the file when it is told the new dev_size (and refuses to shrink it).
        var path = _s.Volume("exp.img", 1 << 20);
        _s.Backstore(1, "exp-1", $"sharedvol/{path}");
        Assert.Equal(0, _s.Run("volume", "resize", path, "--size", "2M"));
        Assert.Equal((2 << 20).ToString(), _s.DevSize(1, "exp-1"));
        Assert.Equal(1 << 20, new FileInfo(path).Length);
    }

    [Fact]
    public void DeleteRefusesWhileExported()
    {
        _s.Lvm.Volumes["vg/db"] = (64 << 20, "thin");
        _s.Backstore(1, "db-1", "sharedvol//dev/vg/db");
        Assert.Equal(1, _s.Run("volume", "delete", "lvm:vg/db", "--yes"));
        Assert.Contains("is exported (backstores db-1); unexport it first", _s.ErrorLine());
        Assert.True(_s.Lvm.Volumes.ContainsKey("vg/db"));
    }

    [Fact]
    public void DeleteAsksAndKeepsTheLvUnlessTheAnswerIsYes()
    {
        _s.Lvm.Volumes["vg/db"] = (64 << 20, "thin");
        _s.Stdin = "no\n";
        Assert.Equal(1, _s.Run("volume", "delete", "lvm:vg/db"));
        Assert.Contains("type 'yes'", _s.Out.ToString());
        Assert.Contains("not confirmed", _s.ErrorLine());
        Assert.True(_s.Lvm.Volumes.ContainsKey("vg/db"));
    }

    [Fact]
    public void DeleteRemovesTheLvAfterYes()
    {
        _s.Lvm.Volumes["vg/db"] = (64 << 20, "thin");
        _s.Stdin = "yes\n";
        Assert.Equal(0, _s.Run("volume", "delete", "lvm:vg/db"));
        Assert.Contains("lvremove --yes vg/db", _s.Lvm.Commands);
        Assert.False(_s.Lvm.Volumes.ContainsKey("vg/db"));
        Assert.Contains("deleted logical volume vg/db", _s.Out.ToString());
    }

    [Fact]
    public void DeleteRemovesAFileWithYes()
    {
        var path = _s.Volume("gone.img");
        Assert.Equal(0, _s.Run("volume", "delete", path, "--yes"));
        Assert.False(File.Exists(path));
        Assert.Equal(1, _s.Run("volume", "delete", path, "--yes"));
        Assert.Contains("does not exist", _s.ErrorLine());
    }

    [Fact]
    public void ExportTakesAnLvByItsLvmName()
    {
        Assert.Equal("/dev/vg/db", Volumes.Canonical("lvm:vg/db"));
    }
}
