namespace TcmuSharedVolume.Cli.Tests;

/// <summary>
/// <c>export iscsi</c> requires CHAP unless told otherwise: registrations and reservations belong
/// to the initiator name, so an ACL without a secret hands them to any host that claims the name.
/// </summary>
public sealed class ExportIscsiChapTests : IDisposable
{
    private const string Target = "iqn.2024-01.org.example:shared";
    private const string Node1 = "iqn.2024-01.org.example:node1";
    private const string Node2 = "iqn.2024-01.org.example:node2";
    private const string Secret1 = "node1-secret-0123";
    private const string Secret2 = "node2-secret-4567";
    private const string TargetSecret2 = "target-secret-89ab";
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    private string Secrets(string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var path = Path.Combine(_s.Dir, "chap.secrets");
        File.WriteAllText(path, text);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, mode);
        return path;
    }

    private const string BothNodes = $"""
        # initiator   user   secret   [mutual user   mutual secret]
        {Node1} node1 {Secret1}

        IQN.2024-01.org.example:NODE2   node2   {Secret2}   target2   {TargetSecret2}
        """;

    private string Auth(string initiator, string attribute) =>
        File.ReadAllText(Path.Combine(_s.Configfs, "iscsi", Target, "tpgt_1", "acls", initiator, "auth", attribute));

    private void AssertNoSecretLeaked()
    {
        foreach (var secret in new[] { Secret1, Secret2, TargetSecret2 })
        {
            Assert.DoesNotContain(_s.Targetcli.Commands, c => c.Contains(secret));
            Assert.DoesNotContain(secret, _s.Out.ToString());
            Assert.DoesNotContain(secret, _s.Err.ToString());
        }
    }

    [Fact]
    public void EveryTpgOfAMultiPortalExportGetsTheSecrets()
    {
        var vol = _s.Volume();
        int rc = _s.Run("export", "iscsi", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2,
            "--portal", "127.0.0.1", "--portal", "127.0.0.2", "--chap-secrets", Secrets(BothNodes));

        Assert.Equal(0, rc);
        foreach (var tpgt in new[] { 1, 2 })
        {
            string Read(string initiator, string attribute) =>
                File.ReadAllText(Path.Combine(_s.Configfs, "iscsi", Target, $"tpgt_{tpgt}", "acls", initiator, "auth", attribute));
            Assert.Equal(Secret1, Read(Node1, "password"));
            Assert.Equal(Secret2, Read(Node2, "password"));
            Assert.Equal(TargetSecret2, Read(Node2, "password_mutual"));
        }
        Assert.Contains($"/iscsi/{Target}/tpg2 set attribute generate_node_acls=0 authentication=1", _s.Targetcli.Commands);
        AssertNoSecretLeaked();
    }

    [Fact]
    public void WithoutSecretsOrNoAuthTheExportIsRefusedAndNothingRuns()
    {
        int rc = _s.Run("export", "iscsi", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1);

        Assert.Equal(2, rc);
        Assert.Empty(_s.Targetcli.Commands);
        Assert.Contains("--chap-secrets", _s.ErrorLine());
    }

    [Fact]
    public void SecretsFromAFileGoIntoEachAclsAuthAttributesNeverOnTargetclisCommandLine()
    {
        var vol = _s.Volume();

        int rc = _s.Run("export", "iscsi", "--volume", vol, "--target", Target, "--initiator", Node1, "--initiator", Node2,
            "--chap-secrets", Secrets(BothNodes));

        Assert.Equal(0, rc);
        Assert.Equal("", _s.Err.ToString());
        Assert.Contains($"/iscsi/{Target}/tpg1 set attribute generate_node_acls=0 authentication=1", _s.Targetcli.Commands);
        // Authentication is on before the first ACL can admit anybody.
        Assert.True(_s.Targetcli.Commands.FindIndex(c => c.Contains("authentication=1")) <
                    _s.Targetcli.Commands.FindIndex(c => c.Contains("acls create")));
        Assert.Equal("node1", Auth(Node1, "userid"));
        Assert.Equal(Secret1, Auth(Node1, "password"));
        Assert.Equal("", Auth(Node1, "userid_mutual"));
        Assert.Equal("", Auth(Node1, "password_mutual"));
        Assert.Equal("node2", Auth(Node2, "userid"));
        Assert.Equal(Secret2, Auth(Node2, "password"));
        Assert.Equal("target2", Auth(Node2, "userid_mutual"));
        Assert.Equal(TargetSecret2, Auth(Node2, "password_mutual"));
        Assert.Contains($"{Node1}: LUN 0 = user:sharedvol/vol1-1, CHAP", _s.Out.ToString());
        Assert.Contains($"{Node2}: LUN 0 = user:sharedvol/vol1-2, mutual CHAP", _s.Out.ToString());
        Assert.Equal("saveconfig", _s.Targetcli.Commands[^1]);
        AssertNoSecretLeaked();
    }

    [Fact]
    public void SecretsMayComeFromStdin()
    {
        _s.Stdin = $"{Node1} node1 {Secret1}\n";

        Assert.Equal(0, _s.Run("export", "iscsi", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1, "--chap-secrets", "-"));

        Assert.Equal(Secret1, Auth(Node1, "password"));
        AssertNoSecretLeaked();
    }

    [Theory]
    [InlineData(0x1A0)] // 0640
    [InlineData(0x184)] // 0604
    [InlineData(0x190)] // 0620
    public void ASecretsFileOthersCanReadOrWriteIsRefused(int mode)
    {
        int rc = _s.Run("export", "iscsi", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1,
            "--chap-secrets", Secrets(BothNodes, (UnixFileMode)mode));

        Assert.Equal(2, rc);
        Assert.Empty(_s.Targetcli.Commands);
        Assert.Contains("chmod 600", _s.ErrorLine());
        AssertNoSecretLeaked();
    }

    [Theory]
    [InlineData($"{Node1} node1", "got 2 field(s)")]
    [InlineData($"{Node1} node1 {Secret1} target1", "got 4 field(s)")]
    [InlineData($"{Node1} node1 short", "SECRET is shorter than 12 bytes")]
    [InlineData($"{Node1} node1 {Secret1} target1 {Secret1}", "MUTUAL_SECRET must differ from SECRET")]
    [InlineData($"{Node1} NULLuser {Secret1}", "USER may not start with NULL")]
    [InlineData($"{Node1} node1 {Secret1}\n{Node1} again {Secret2}", "line 2: initiator iqn.2024-01.org.example:node1 has credentials on an earlier line too")]
    [InlineData($"node1 node1 {Secret1}", "line 1: initiator 'node1' is not an iSCSI name")]
    [InlineData("# nothing but a comment", "holds no credentials")]
    [InlineData($"{Node2} node2 {Secret2}", "no line for initiator iqn.2024-01.org.example:node1")]
    public void ABadSecretsFileIsAUsageErrorThatQuotesNoSecretAndRunsNothing(string text, string expected)
    {
        int rc = _s.Run("export", "iscsi", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1,
            "--chap-secrets", Secrets(text));

        Assert.Equal(2, rc);
        Assert.Empty(_s.Targetcli.Commands);
        Assert.Contains(expected, _s.ErrorLine());
        AssertNoSecretLeaked();
    }

    [Fact]
    public void AnAclWhoseSecretCannotBeWrittenRollsTheExportBack()
    {
        _s.Targetcli.OnRun = null; // the ACL's auth/ directory never appears

        int rc = _s.Run("export", "iscsi", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1,
            "--chap-secrets", Secrets(BothNodes));

        Assert.Equal(1, rc);
        var line = _s.ErrorLine();
        Assert.Contains($"cannot set the CHAP credentials of ACL {Node1}", line);
        Assert.Contains("rolled back", line);
        Assert.Equal([$"/iscsi delete wwn={Target}", "/backstores/user:sharedvol delete vol1-1"], _s.Targetcli.Commands[^2..]);
        Assert.DoesNotContain("saveconfig", _s.Targetcli.Commands);
        AssertNoSecretLeaked();
    }

    [Fact]
    public void SecretsAndNoAuthExcludeEachOther()
    {
        Assert.Equal(2, _s.Run("export", "iscsi", "--volume", _s.Volume(), "--target", Target, "--initiator", Node1,
            "--chap-secrets", Secrets(BothNodes), "--no-auth"));
        Assert.Empty(_s.Targetcli.Commands);
        Assert.Contains("--chap-secrets and --no-auth exclude each other", _s.ErrorLine());
    }
}
