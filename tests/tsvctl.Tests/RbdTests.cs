using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli.Tests;

/// <summary>RBD images (rbd:POOL/IMAGE) through the rbd and rados tools, played by <see cref="FakeCeph"/>.</summary>
public sealed class RbdVolumeTests : IDisposable
{
    private readonly Sandbox _s = new();
    private readonly string _conf;

    public RbdVolumeTests()
    {
        _conf = Path.Combine(_s.Dir, "ceph.conf");
        File.WriteAllText(_conf, "[global]\n");
    }

    public void Dispose() => _s.Dispose();

    private static bool IsRbd(string command) => command.StartsWith("rbd ", StringComparison.Ordinal);

    [Fact]
    public void CreateMakesALayeringOnlyImageWithTheGivenClient()
    {
        Assert.Equal(0, _s.Run("volume", "create", "rbd:rbd/db", "--size", "1G", "--conf", _conf, "--id", "client.tsv"));

        Assert.Contains($"rbd -c {_conf} --id tsv --client_mount_timeout 15 create --size 1073741824B --image-feature layering rbd/db", _s.Ceph.Commands);
        Assert.Equal(1L << 30, _s.Ceph.Images["rbd/db"]);
        var output = _s.Out.ToString();
        Assert.Contains("created rbd:rbd/db (1073741824 bytes, RBD image with features layering)", output);
        Assert.Contains($"tsvctl export iscsi --volume rbd:rbd/db --conf {_conf} --id tsv ...", output);
    }

    [Fact]
    public void CreateRefusesAnImageThatExists()
    {
        _s.Ceph.Images["rbd/db"] = 4096;
        Assert.Equal(1, _s.Run("volume", "create", "rbd:rbd/db", "--size", "1G"));
        Assert.Equal("tsvctl: RBD image rbd/db already exists; refusing to touch it (tsvctl volume resize grows it)", _s.ErrorLine());
        Assert.DoesNotContain(_s.Ceph.Commands, c => c.Contains(" create ", StringComparison.Ordinal));
        Assert.Equal(4096, _s.Ceph.Images["rbd/db"]);
    }

    [Theory]
    [InlineData(new[] { "rbd:rbd" }, 2, "must be rbd:POOL/IMAGE")]
    [InlineData(new[] { "rbd:rbd/a;b" }, 2, "'a;b' is not an image name: use letters")]
    [InlineData(new[] { "rbd:.hidden/x" }, 2, "is not a pool name")]
    [InlineData(new[] { "rbd:rbd/x", "--conf", "relative.conf" }, 2, "must be an absolute path")]
    [InlineData(new[] { "rbd:rbd/x", "--conf", "/etc/no-such-ceph.conf" }, 1, "--conf /etc/no-such-ceph.conf does not exist")]
    [InlineData(new[] { "rbd:rbd/x", "--id", "bad id" }, 2, "is not a client id")]
    [InlineData(new[] { "rbd:rbd/x", "--thin", "pool" }, 2, "--thin is for LVM volumes")]
    [InlineData(new[] { "/srv/x.img", "--id", "tsv" }, 2, "--conf and --id are for RBD images (rbd:POOL/IMAGE)")]
    [InlineData(new[] { "rbd:nopool/x" }, 1, "rbd info failed (exit 2): rbd: error opening pool 'nopool': (2) No such file or directory")]
    public void BadNamesAndMissingPoolsAreClearErrors(string[] args, int exit, string message)
    {
        Assert.Equal(exit, _s.Run(["volume", "create", .. args, "--size", "1G"]));
        Assert.Contains(message, _s.ErrorLine());
        Assert.DoesNotContain(_s.Ceph.Commands, c => c.Contains(" create ", StringComparison.Ordinal));
    }

    [Fact]
    public void AClusterThatCannotBeReachedIsNamedByTheToolsOwnLine()
    {
        _s.Ceph.Fail = "rbd info";
        Assert.Equal(1, _s.Run("volume", "create", "rbd:rbd/db", "--size", "1G"));
        Assert.Equal("tsvctl: rbd info failed (exit 1): rbd: couldn't connect to the cluster!", _s.ErrorLine());
    }

    [Fact]
    public void ResizeOfAnImageNotExportedHereRunsRbdResize()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        Assert.Equal(0, _s.Run("volume", "resize", "rbd:rbd/db", "--size", "128M"));
        Assert.Contains("rbd --client_mount_timeout 15 resize --no-progress --size 134217728B rbd/db", _s.Ceph.Commands);
        Assert.Equal(128 << 20, _s.Ceph.Images["rbd/db"]);
        Assert.Equal("resized rbd/rbd/db to 134217728 bytes (not exported)", _s.Out.ToString().Trim());
    }

    [Fact]
    public void ResizeOfAnImageExportedHereTellsItsBackstoresAndTheDaemonGrowsIt()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        _s.Ceph.Watchers["rbd/db"] = ["127.0.0.1:0/11"]; // this host's daemon
        _s.Backstore(1, "db-1", $"sharedvol/rbd/rbd/db;ceph_conf={_conf};initiator=iqn.2024-01.org.example%3Anode1");
        _s.Backstore(2, "other-1", "sharedvol/rbd/rbd/other");

        Assert.Equal(0, _s.Run("volume", "resize", "rbd:rbd/db", "--size", "128M"));

        Assert.DoesNotContain(_s.Ceph.Commands, c => c.Contains(" resize ", StringComparison.Ordinal));
        Assert.Equal((128 << 20).ToString(), _s.DevSize(1, "db-1"));
        Assert.Equal("", _s.DevSize(2, "other-1"));
        Assert.Equal(["saveconfig"], _s.Targetcli.Commands);
        Assert.Equal("resized rbd/rbd/db to 134217728 bytes; 1 path(s) told: db-1; configuration saved", _s.Out.ToString().Trim());
    }

    [Fact]
    public void ResizeSaysWhichOtherHostsMustBeToldToo()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        _s.Ceph.Watchers["rbd/db"] = ["127.0.0.1:0/21", "127.0.0.1:0/22"];
        Assert.Equal(0, _s.Run("volume", "resize", "rbd:rbd/db", "--size", "128M", "--id", "tsv"));
        Assert.Contains("2 other client(s) have rbd:rbd/db open, e.g. other hosts serving it: run " +
                        "tsvctl volume resize rbd:rbd/db --size 134217728 --id tsv on each of them", _s.Out.ToString());
    }

    [Fact]
    public void ResizeNeverShrinks()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        Assert.Equal(1, _s.Run("volume", "resize", "rbd:rbd/db", "--size", "32M"));
        Assert.Contains("rbd/db has 67108864 bytes; shrinking to 33554432 is refused", _s.ErrorLine());
        Assert.Equal(64 << 20, _s.Ceph.Images["rbd/db"]);
    }

    [Fact]
    public void DeleteRefusesWhileThisHostExportsIt()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        _s.Backstore(1, "db-1", "sharedvol/rbd/rbd/db");
        Assert.Equal(1, _s.Run("volume", "delete", "rbd:rbd/db", "--yes"));
        Assert.Equal("tsvctl: rbd/rbd/db is exported (backstores db-1); unexport it first: tsvctl unexport --volume rbd:rbd/db", _s.ErrorLine());
        Assert.True(_s.Ceph.Images.ContainsKey("rbd/db"));
    }

    [Fact]
    public void DeleteRefusesWhileAnotherHostHasItOpen()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        _s.Ceph.Watchers["rbd/db"] = ["10.0.0.2:0/3011458327"];
        Assert.Equal(1, _s.Run("volume", "delete", "rbd:rbd/db", "--yes"));
        Assert.Contains("rbd:rbd/db is open on 1 client(s) (10.0.0.2:0/3011458327): another host serves it", _s.ErrorLine());
        Assert.True(_s.Ceph.Images.ContainsKey("rbd/db"));
        Assert.DoesNotContain(_s.Ceph.Commands, c => c.Contains(" rm ", StringComparison.Ordinal));
    }

    [Fact]
    public void DeleteAsksThenRemovesTheImageAndItsReservationTable()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        _s.Ceph.Objects.Add("rbd/tsv.pr.db");
        _s.Stdin = "no\n";
        Assert.Equal(1, _s.Run("volume", "delete", "rbd:rbd/db"));
        Assert.Contains("delete RBD image rbd/db and every byte on it? type 'yes'", _s.Out.ToString());
        Assert.True(_s.Ceph.Images.ContainsKey("rbd/db"));

        _s.Stdin = "yes\n";
        Assert.Equal(0, _s.Run("volume", "delete", "rbd:rbd/db"));
        Assert.False(_s.Ceph.Images.ContainsKey("rbd/db"));
        Assert.Empty(_s.Ceph.Objects);
        Assert.Contains("deleted RBD image rbd/db and its reservation table rbd/tsv.pr.db", _s.Out.ToString());
    }

    [Fact]
    public void DeleteOfAnImageNeverServedHasNoTableToRemove()
    {
        _s.Ceph.Images["rbd/db"] = 64 << 20;
        Assert.Equal(0, _s.Run("volume", "delete", "rbd:rbd/db", "--yes"));
        Assert.False(_s.Ceph.Images.ContainsKey("rbd/db"));
        Assert.Equal(1, _s.Run("volume", "delete", "rbd:rbd/db", "--yes"));
        Assert.Equal("tsvctl: RBD image rbd/db does not exist", _s.ErrorLine());
    }

    [Fact]
    public void ExportIscsiPutsTheImageAndItsClientIntoEveryConfigString()
    {
        _s.Ceph.Images["rbd/db"] = 16 << 20;
        Assert.Equal(0, _s.Run("export", "iscsi", "--volume", "rbd:rbd/db", "--conf", _conf, "--id", "tsv",
            "--target", "iqn.2024-01.org.example:db", "--initiator", "iqn.2024-01.org.example:node1",
            "--initiator", "iqn.2024-01.org.example:node2", "--no-auth"));

        Assert.Contains($"/backstores/user:sharedvol create name=db-1 size=16777216 cfgstring=rbd/rbd/db;ceph_conf={_conf};ceph_id=tsv;" +
                        "initiator=iqn.2024-01.org.example%3Anode1", _s.Targetcli.Commands);
        Assert.Contains($"/backstores/user:sharedvol create name=db-2 size=16777216 cfgstring=rbd/rbd/db;ceph_conf={_conf};ceph_id=tsv;" +
                        "initiator=iqn.2024-01.org.example%3Anode2", _s.Targetcli.Commands);
        Assert.Contains("exported rbd/rbd/db on iqn.2024-01.org.example:db to 2 initiator(s)", _s.Out.ToString());
        // What the daemon will parse: the same image, client and initiator.
        var config = TcmuSharedVolume.Volumes.VolumeConfig.Parse($"sharedvol/rbd/rbd/db;ceph_conf={_conf};ceph_id=tsv;initiator=iqn.2024-01.org.example%3Anode1");
        Assert.Equal(("rbd", "db", _conf, "tsv"), (config.Rbd!.Pool, config.Rbd.Image, config.Rbd.CephConf, config.Rbd.ClientId));
    }

    [Fact]
    public void ExportLoopbackOfAnImage()
    {
        _s.Ceph.Images["rbd/db"] = 16 << 20;
        Assert.Equal(0, _s.Run("export", "loopback", "--volume", "rbd:rbd/db", "--nodes", "1"));
        Assert.Contains("/backstores/user:sharedvol create name=db-1 size=16777216 cfgstring=rbd/rbd/db", _s.Targetcli.Commands);
    }

    [Fact]
    public void ExportOfAMissingImageSaysHowToCreateItAndTouchesNothing()
    {
        Assert.Equal(1, _s.Run("export", "loopback", "--volume", "rbd:rbd/db", "--conf", _conf));
        Assert.Equal($"tsvctl: RBD image rbd/db does not exist (create it: tsvctl volume create rbd:rbd/db --size 10G --conf {_conf})", _s.ErrorLine());
        Assert.Empty(_s.Targetcli.Commands);
    }

    [Fact]
    public void UnexportRemovesTheBackstoresOfTheImage()
    {
        _s.Backstore(1, "db-1", $"sharedvol/rbd/rbd/db;ceph_conf={_conf}");
        _s.Backstore(2, "other-1", "sharedvol/rbd/rbd/other");
        Assert.Equal(0, _s.Run("unexport", "--volume", "rbd:rbd/db"));
        Assert.Equal(["/backstores/user:sharedvol delete db-1", "saveconfig"], _s.Targetcli.Commands);
    }
}

/// <summary>status and pr of an RBD volume several hosts serve: the shared table's version and hosts.</summary>
public sealed class RbdStatusTests : IDisposable
{
    private readonly Sandbox _s = new();

    private static readonly AdminStatus Status = new("0.1.0",
    [
        new VolumeStatus("rbd/rbd/db", "7c41e0", 1L << 30, 512,
            [new PathStatus("db-1", "iqn.2024-01.org.example:node1", "iqn.2024-01.org.example:db,t,0x1", null)],
            new ReservationStatus(5, false, [new RegistrationStatus("iqn.2024-01.org.example:node1", null, "00000000000000a1")], null, null))
        {
            Shared = new SharedTableStatus(12, "rbd/tsv.pr.db",
            [
                new TableHostStatus(4305, 2, "gw2", "2026-12-05T08:00:00Z", "127.0.0.1:0/22", "serving", false),
                new TableHostStatus(4100, 2, "gw2", "2026-12-01T10:00:00Z", "127.0.0.1:0/9", "gone", false),
                new TableHostStatus(4171, 1, "gw1", "2026-12-05T07:00:00Z", "127.0.0.1:0/11", "serving", true),
                new TableHostStatus(4400, 3, "gw3", null, "127.0.0.1:0/33", "not answering", false),
            ]),
        },
    ]);

    public RbdStatusTests() => _s.Admin = new FakeAdmin(AdminJsonContext.Serialize(Status));

    public void Dispose() => _s.Dispose();

    [Fact]
    public void StatusShowsTheTableVersionAndWhichHostsServe()
    {
        Assert.Equal(0, _s.Run("status"));
        var lines = _s.Out.ToString().Split('\n').Select(l => l.TrimEnd()).SkipWhile(l => !l.StartsWith("  shared table", StringComparison.Ordinal)).ToList();
        Assert.Equal(
        [
            "  shared table rbd/tsv.pr.db: version 12, 2 host(s) serving",
            "    host 1 (gw1), client.4171 (this host): serving, since 2026-12-05T07:00:00Z",
            "    host 2 (gw2), client.4305: serving, since 2026-12-05T08:00:00Z",
            "    host 3 (gw3), client.4400: NOT ANSWERING: the next change waits for it, then fences it",
            "    host 2 (gw2), client.4100: gone: stale record, removed when a host next starts or rejoins, since 2026-12-01T10:00:00Z",
        ], lines.Take(5));
    }

    [Fact]
    public void HostsThatCannotBeReadAreSaidSo()
    {
        var fenced = Status with { Volumes = [Status.Volumes[0] with { Shared = new SharedTableStatus(12, "rbd/tsv.pr.db", []) { HostsError = "this host is fenced" } }] };
        _s.Admin = new FakeAdmin(AdminJsonContext.Serialize(fenced));
        Assert.Equal(0, _s.Run("pr", "show", "rbd:rbd/db"));
        Assert.Contains("shared table rbd/tsv.pr.db: version 12, hosts unknown (this host is fenced)", _s.Out.ToString());
    }

    [Fact]
    public void PrShowAndClearNameTheImageAsRbdPoolImage()
    {
        Assert.Equal(0, _s.Run("pr", "show", "rbd:rbd/db", "--json"));
        Assert.Contains("\"version\": 12", _s.Out.ToString());
        Assert.Equal(0, _s.Run("pr", "show", "rbd/rbd/db"));

        Assert.Equal(0, _s.Run("pr", "clear", "rbd:rbd/db", "--yes-i-know"));
        Assert.Equal([("rbd/rbd/db", true)], _s.Admin.Cleared);
    }

    [Fact]
    public void PrHistoryOfAnImageAsksTheJournalForItsVolumeKey()
    {
        Assert.Equal(0, _s.Run("pr", "history", "rbd:rbd/db"));
        Assert.Contains(_s.Journal.Calls.Single(), a => a.Contains("rbd/rbd/db", StringComparison.Ordinal));
    }
}
