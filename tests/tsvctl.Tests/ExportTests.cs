namespace TcmuSharedVolume.Cli.Tests;

public sealed class ExportIscsiTests : IDisposable
{
    private const string Target = "iqn.2024-01.org.example:shared";
    private const string Node1 = "iqn.2024-01.org.example:node1";
    private const string Node2 = "iqn.2024-01.org.example:node2";
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    [Fact]
    public void OneBackstoreLunAndAclPerInitiatorEachSeeingOnlyItsOwnLunZero()
    {
        var vol = _s.Volume();

        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2,
            "--portal", "127.0.0.1:3260");

        Assert.Equal(0, rc);
        Assert.Equal(
        [
            $"/backstores/user:sharedvol create name=vol1-1 size=1073741824 cfgstring={vol};initiator=iqn.2024-01.org.example%3Anode1",
            $"/backstores/user:sharedvol create name=vol1-2 size=1073741824 cfgstring={vol};initiator=iqn.2024-01.org.example%3Anode2",
            $"/iscsi create wwn={Target}",
            $"/iscsi/{Target}/tpg1/portals delete ip_address=0.0.0.0 ip_port=3260",
            $"/iscsi/{Target}/tpg1/portals create ip_address=127.0.0.1 ip_port=3260",
            $"/iscsi/{Target}/tpg1 set attribute generate_node_acls=0 authentication=0",
            $"/iscsi/{Target}/tpg1/luns create storage_object=/backstores/user:sharedvol/vol1-1 lun=0 add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/luns create storage_object=/backstores/user:sharedvol/vol1-2 lun=1 add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/acls create wwn={Node1} add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/acls/{Node1} create mapped_lun=0 tpg_lun_or_backstore=lun0",
            $"/iscsi/{Target}/tpg1/acls create wwn={Node2} add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/acls/{Node2} create mapped_lun=0 tpg_lun_or_backstore=lun1",
            "saveconfig",
        ], _s.Targetcli.Commands);
        Assert.Contains("warning: exported without CHAP (--no-auth)", _s.ErrorLine());
        Assert.Contains($"{Node2}: LUN 0 = user:sharedvol/vol1-2, no authentication", _s.Out.ToString());
    }

    [Fact]
    public void EveryPortalIsItsOwnTpgWithABackstoreLunAndAclPerInitiator()
    {
        var vol = _s.Volume();

        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2,
            "--portal", "127.0.0.1:3260", "--portal", "127.0.0.2");

        Assert.Equal(0, rc);
        string n1 = "initiator=iqn.2024-01.org.example%3Anode1", n2 = "initiator=iqn.2024-01.org.example%3Anode2";
        Assert.Equal(
        [
            // One backstore per (initiator, TPG); rtpi= numbers the ports by their TPG.
            $"/backstores/user:sharedvol create name=vol1-1-tpg1 size=1073741824 cfgstring={vol};{n1};rtpi=1",
            $"/backstores/user:sharedvol create name=vol1-2-tpg1 size=1073741824 cfgstring={vol};{n2};rtpi=1",
            $"/backstores/user:sharedvol create name=vol1-1-tpg2 size=1073741824 cfgstring={vol};{n1};rtpi=2",
            $"/backstores/user:sharedvol create name=vol1-2-tpg2 size=1073741824 cfgstring={vol};{n2};rtpi=2",
            $"/iscsi create wwn={Target}",
            $"/iscsi/{Target} create tag=2",
            $"/iscsi/{Target}/tpg1/portals delete ip_address=0.0.0.0 ip_port=3260",
            $"/iscsi/{Target}/tpg1/portals create ip_address=127.0.0.1 ip_port=3260",
            $"/iscsi/{Target}/tpg2/portals create ip_address=127.0.0.2 ip_port=3260",
            $"/iscsi/{Target}/tpg1 set attribute generate_node_acls=0 authentication=0",
            $"/iscsi/{Target}/tpg1/luns create storage_object=/backstores/user:sharedvol/vol1-1-tpg1 lun=0 add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/luns create storage_object=/backstores/user:sharedvol/vol1-2-tpg1 lun=1 add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/acls create wwn={Node1} add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/acls/{Node1} create mapped_lun=0 tpg_lun_or_backstore=lun0",
            $"/iscsi/{Target}/tpg1/acls create wwn={Node2} add_mapped_luns=false",
            $"/iscsi/{Target}/tpg1/acls/{Node2} create mapped_lun=0 tpg_lun_or_backstore=lun1",
            $"/iscsi/{Target}/tpg2 set attribute generate_node_acls=0 authentication=0",
            $"/iscsi/{Target}/tpg2/luns create storage_object=/backstores/user:sharedvol/vol1-1-tpg2 lun=0 add_mapped_luns=false",
            $"/iscsi/{Target}/tpg2/luns create storage_object=/backstores/user:sharedvol/vol1-2-tpg2 lun=1 add_mapped_luns=false",
            $"/iscsi/{Target}/tpg2/acls create wwn={Node1} add_mapped_luns=false",
            $"/iscsi/{Target}/tpg2/acls/{Node1} create mapped_lun=0 tpg_lun_or_backstore=lun0",
            $"/iscsi/{Target}/tpg2/acls create wwn={Node2} add_mapped_luns=false",
            $"/iscsi/{Target}/tpg2/acls/{Node2} create mapped_lun=0 tpg_lun_or_backstore=lun1",
            "saveconfig",
        ], _s.Targetcli.Commands);
        var output = _s.Out.ToString();
        Assert.Contains($"{Node1}: LUN 0 = user:sharedvol/vol1-1-tpg2 via tpg2 127.0.0.2:3260, no authentication", output);
        Assert.Contains("through 2 portals, one TPG each", output);
    }

    [Fact]
    public void APortalGivenTwiceIsRefusedBeforeAnythingRuns()
    {
        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1,
            "--portal", "127.0.0.1:3260", "--portal", "127.0.0.1");
        Assert.Equal(2, rc);
        Assert.Empty(_s.Targetcli.Commands);
        Assert.Contains("--portal is given twice", _s.ErrorLine());
    }

    [Fact]
    public void OptimizedHostGoesIntoEveryBackstoresConfigString()
    {
        var vol = _s.Volume();

        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2,
            "--portal", "127.0.0.1:3260", "--portal", "127.0.0.2", "--optimized-host", "2");

        Assert.Equal(0, rc);
        var creates = _s.Targetcli.Commands.Where(c => c.StartsWith("/backstores/user:sharedvol create", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, creates.Count);
        // Every path of the volume carries it: the first one a host adopts fixes the setting.
        Assert.All(creates, c => Assert.EndsWith(";optimized_host=2", c));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("64")]
    public void AnOptimizedHostThatIsNoHostIdIsRefusedBeforeAnythingRuns(string host)
    {
        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1,
            "--optimized-host", host);
        Assert.Equal(2, rc);
        Assert.Empty(_s.Targetcli.Commands);
        Assert.Contains($"--optimized-host {host} must be a host_id, 1 to 63", _s.ErrorLine());
    }

    [Fact]
    public void AFailedSecondTpgRollsBackTheWholeExport()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = c => c.Contains("tpg2/portals create");

        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1,
            "--portal", "127.0.0.1", "--portal", "127.0.0.2");

        Assert.Equal(1, rc);
        Assert.Equal(
        [
            $"/iscsi delete wwn={Target}",
            "/backstores/user:sharedvol delete vol1-1-tpg2",
            "/backstores/user:sharedvol delete vol1-1-tpg1",
        ], _s.Targetcli.Commands.SkipWhile(c => !c.Contains("tpg2/portals create")).Skip(1));
        Assert.Contains("rolled back", _s.ErrorLine());
    }

    [Fact]
    public void WithoutPortalTheDefaultPortalIsLeftAloneAndNamesFollowTheGivenPrefix()
    {
        var vol = _s.Volume("data.raw", 4 << 20);

        Assert.Equal(0, _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", "IQN.2024-01.org.example:NODE1", "--name", "db"));

        Assert.DoesNotContain(_s.Targetcli.Commands, c => c.Contains("portals"));
        Assert.StartsWith($"/backstores/user:sharedvol create name=db-1 size=4194304 cfgstring={vol};initiator=iqn.2024-01.org.example%3Anode1",
            _s.Targetcli.Commands[0]);
        Assert.Contains($"/iscsi/{Target}/tpg1/acls create wwn={Node1} add_mapped_luns=false", _s.Targetcli.Commands); // IQNs are lower-cased
    }

    [Fact]
    public void AFailedLunIsRolledBackInReverseOrderAndReportedOnOneLine()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = c => c.Contains("luns create storage_object=/backstores/user:sharedvol/vol1-2");

        int rc = _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2);

        Assert.Equal(1, rc);
        int failedAt = _s.Targetcli.Commands.FindIndex(c => c.Contains("vol1-2 lun=1"));
        Assert.Equal(
        [
            $"/iscsi delete wwn={Target}",
            "/backstores/user:sharedvol delete vol1-2",
            "/backstores/user:sharedvol delete vol1-1",
        ], _s.Targetcli.Commands[(failedAt + 1)..]);
        Assert.DoesNotContain("saveconfig", _s.Targetcli.Commands);
        var line = _s.ErrorLine();
        Assert.Contains("luns create storage_object=/backstores/user:sharedvol/vol1-2", line);
        Assert.Contains("Error: simulated failure", line);
        Assert.Contains("rolled back (3 step(s) undone)", line);
    }

    [Fact]
    public void AFailedSecondBackstoreRemovesOnlyTheFirst()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = c => c.Contains("create name=vol1-2");

        Assert.Equal(1, _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2));

        Assert.Equal("/backstores/user:sharedvol delete vol1-1", _s.Targetcli.Commands[^1]);
        Assert.Equal(3, _s.Targetcli.Commands.Count);
    }

    [Fact]
    public void AFailedSaveconfigUndoesEverything()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = c => c == "saveconfig";

        Assert.Equal(1, _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1));

        Assert.Equal([$"/iscsi delete wwn={Target}", "/backstores/user:sharedvol delete vol1-1"], _s.Targetcli.Commands[^2..]);
    }

    [Fact]
    public void AnUndoThatFailsIsNamedSoTheAdminCanFinishByHand()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = c => c.StartsWith("/iscsi create") || c == "/backstores/user:sharedvol delete vol1-1";

        Assert.Equal(1, _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1));

        Assert.Contains("rollback incomplete, run by hand: targetcli /backstores/user:sharedvol delete vol1-1", _s.ErrorLine());
    }

    [Fact]
    public void TheFirstStepFailingChangesNothing()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = _ => true;

        Assert.Equal(1, _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1));

        Assert.Single(_s.Targetcli.Commands);
        Assert.EndsWith("nothing was changed", _s.ErrorLine());
    }

    [Theory]
    [InlineData("--initiator", "not-an-iqn")]
    [InlineData("--initiator", "iqn.2024-01.org.example:node1")] // given twice with the default one
    [InlineData("--target", "eui.0123456789abcdef")]
    [InlineData("--portal", "localhost:99999")]
    [InlineData("--name", "bad name")]
    public void BadArgumentsAreUsageErrorsAndRunNothing(string option, string value)
    {
        var vol = _s.Volume();
        var args = new List<string> { "export", "iscsi", "--no-auth", "--volume", vol, "--initiator", Node1 };
        if (option != "--target") args.AddRange(["--target", Target]);
        args.AddRange([option, value]);

        Assert.Equal(2, _s.Run([.. args]));

        Assert.Empty(_s.Targetcli.Commands);
        _s.ErrorLine();
    }

    [Fact]
    public void AMissingRequiredOptionIsAUsageError()
    {
        Assert.Equal(2, _s.Run("export", "iscsi", "--no-auth", "--volume", _s.Volume(), "--initiator", Node1));
        Assert.Contains("--target", _s.ErrorLine());
    }

    [Fact]
    public void AMissingVolumeIsAFailureNotAUsageError()
    {
        Assert.Equal(1, _s.Run("export", "iscsi", "--no-auth", "--volume", Path.Combine(_s.Dir, "nope.img"), "--target", Target, "--initiator", Node1));
        Assert.Contains("does not exist", _s.ErrorLine());
        Assert.Empty(_s.Targetcli.Commands);
    }

    [Fact]
    public void AVolumePathACfgstringCannotCarryIsRefused()
    {
        var vol = _s.Volume("a;b.img");
        Assert.Equal(2, _s.Run("export", "iscsi", "--no-auth", "--volume", vol, "--target", Target, "--initiator", Node1));
        Assert.Empty(_s.Targetcli.Commands);
    }
}

public sealed class ExportLoopbackTests : IDisposable
{
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    [Fact]
    public void EachNodeGetsItsOwnBackstoreAndTargetWithTheLunLinkedLast()
    {
        var vol = _s.Volume();

        Assert.Equal(0, _s.Run("export", "loopback", "--volume", vol, "--nodes", "2"));

        // Wwns: 1 and 3 are targets, 2 and 4 the nexus WWNs offered if rtslib wrote none.
        Assert.Equal(
        [
            $"/backstores/user:sharedvol create name=vol1-1 size=1073741824 cfgstring={vol}",
            "/loopback create wwn=naa.5001405000000001",
            "/loopback/naa.5001405000000001/luns create storage_object=/backstores/user:sharedvol/vol1-1 lun=0",
            $"/backstores/user:sharedvol create name=vol1-2 size=1073741824 cfgstring={vol}",
            "/loopback create wwn=naa.5001405000000003",
            "/loopback/naa.5001405000000003/luns create storage_object=/backstores/user:sharedvol/vol1-2 lun=0",
            "saveconfig",
        ], _s.Targetcli.Commands);
    }

    [Fact]
    public void TheNexusIsWrittenBeforeTheLunWhenTargetcliLeftNone()
    {
        var vol = _s.Volume();
        string? nexusWhenLunLinked = null;
        _s.Targetcli.OnRun = c =>
        {
            // Plays rtslib creating the TPG without a nexus.
            if (c.StartsWith("/loopback create wwn="))
                Directory.CreateDirectory(Path.Combine(_s.Configfs, "loopback", c["/loopback create wwn=".Length..], "tpgt_1"));
            if (c.Contains("/luns create"))
                nexusWhenLunLinked = File.ReadAllText(Path.Combine(_s.Configfs, "loopback", "naa.5001405000000001", "tpgt_1", "nexus"));
        };

        Assert.Equal(0, _s.Run("export", "loopback", "--volume", vol, "--nodes", "1"));

        Assert.Equal("naa.5001405000000002", nexusWhenLunLinked);
    }

    [Fact]
    public void AnExistingNexusIsKept()
    {
        var vol = _s.Volume();
        _s.Targetcli.OnRun = c =>
        {
            if (!c.StartsWith("/loopback create wwn=")) return;
            var tpg = Directory.CreateDirectory(Path.Combine(_s.Configfs, "loopback", c["/loopback create wwn=".Length..], "tpgt_1"));
            File.WriteAllText(Path.Combine(tpg.FullName, "nexus"), "naa.50014059999999999\n");
        };

        Assert.Equal(0, _s.Run("export", "loopback", "--volume", vol, "--nodes", "1"));

        Assert.Equal("naa.50014059999999999\n",
            File.ReadAllText(Path.Combine(_s.Configfs, "loopback", "naa.5001405000000001", "tpgt_1", "nexus")));
    }

    [Fact]
    public void AFailedSecondNodeRemovesTheFirstNodesTargetAndBackstore()
    {
        var vol = _s.Volume();
        _s.Targetcli.Fails = c => c == "/loopback create wwn=naa.5001405000000003";

        Assert.Equal(1, _s.Run("export", "loopback", "--volume", vol, "--nodes", "2"));

        Assert.Equal(
        [
            "/backstores/user:sharedvol delete vol1-2",
            "/loopback delete wwn=naa.5001405000000001",
            "/backstores/user:sharedvol delete vol1-1",
        ], _s.Targetcli.Commands[^3..]);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("129")]
    [InlineData("two")]
    public void NodesOutOfRangeIsAUsageError(string nodes)
    {
        Assert.Equal(2, _s.Run("export", "loopback", "--volume", _s.Volume(), "--nodes", nodes));
        Assert.Empty(_s.Targetcli.Commands);
    }
}

public sealed class UnexportTests : IDisposable
{
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    private void Lun(string fabric, string wwn, int tpgt, int lun, int hba, string backstore)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_s.Configfs, fabric, wwn, $"tpgt_{tpgt}", "lun", $"lun_{lun}"));
        File.CreateSymbolicLink(Path.Combine(dir.FullName, "a1b2c3"), Path.Combine(_s.Configfs, "core", $"user_{hba}", backstore));
    }

    [Fact]
    public void RemovesTargetsThatOnlyServeTheVolumeLunsOfSharedTargetsThenTheBackstores()
    {
        var vol = _s.Volume();
        _s.Backstore(1, "vol1-1", $"sharedvol/{vol};initiator=iqn.2024-01.org.example%3Anode1");
        _s.Backstore(2, "vol1-2", $"sharedvol/{vol}");
        _s.Backstore(3, "other-1", $"sharedvol/{vol}.other");
        Lun("iscsi", "iqn.2024-01.org.example:only", 1, 0, 1, "vol1-1");
        Lun("iscsi", "iqn.2024-01.org.example:mixed", 1, 0, 3, "other-1");
        Lun("iscsi", "iqn.2024-01.org.example:mixed", 1, 4, 2, "vol1-2");

        Assert.Equal(0, _s.Run("unexport", "--volume", vol));

        Assert.Equal(
        [
            "/iscsi/iqn.2024-01.org.example:mixed/tpg1/luns delete lun=4",
            "/iscsi delete wwn=iqn.2024-01.org.example:only",
            "/backstores/user:sharedvol delete vol1-1",
            "/backstores/user:sharedvol delete vol1-2",
            "saveconfig",
        ], _s.Targetcli.Commands);
    }

    [Fact]
    public void LoopbackTargetsOfTheVolumeAreDeleted()
    {
        var vol = _s.Volume();
        _s.Backstore(1, "vol1-1", $"sharedvol/{vol}");
        Lun("loopback", "naa.5001405000000001", 1, 0, 1, "vol1-1");

        Assert.Equal(0, _s.Run("unexport", "--volume", vol));

        Assert.Equal("/loopback delete wwn=naa.5001405000000001", _s.Targetcli.Commands[0]);
    }

    [Fact]
    public void AVolumeWithNoBackstoreIsAFailure()
    {
        Assert.Equal(1, _s.Run("unexport", "--volume", _s.Volume()));
        Assert.Contains("no user:sharedvol backstore serves", _s.ErrorLine());
        Assert.Empty(_s.Targetcli.Commands);
    }

    [Fact]
    public void AFailureStopsAndSaysWhatWasAlreadyDone()
    {
        var vol = _s.Volume();
        _s.Backstore(1, "vol1-1", $"sharedvol/{vol}");
        _s.Backstore(2, "vol1-2", $"sharedvol/{vol}");
        _s.Targetcli.Fails = c => c.EndsWith("vol1-2");

        Assert.Equal(1, _s.Run("unexport", "--volume", vol));

        Assert.Contains("already done: /backstores/user:sharedvol delete vol1-1", _s.ErrorLine());
        Assert.DoesNotContain("saveconfig", _s.Targetcli.Commands);
    }
}
