using System.Globalization;
using System.Text.Json;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Cli;

/// <summary>
/// An RBD image named <c>rbd:POOL/IMAGE</c> on tsvctl's command line, and the Ceph client that
/// reaches it (<c>--conf</c>, <c>--id</c>; by default what the rbd tool finds itself:
/// /etc/ceph/ceph.conf, client.admin).
/// </summary>
public sealed record RbdImage(string Pool, string Image, string? CephConf, string? ClientId)
{
    public const string Scheme = "rbd:";

    /// <summary>The volume's key in the daemon (its status, pr show/clear, the journal): rbd/POOL/IMAGE.</summary>
    public string BackingPath => RbdLocation.PathPrefix + Pool + "/" + Image;

    /// <summary>The shared reservation table's object beside the image (docs/reservations.md §18).</summary>
    public string TableObject => "tsv.pr." + Image;

    /// <summary>The config string's head for every backstore: rbd/POOL/IMAGE[;ceph_conf=…][;ceph_id=…].</summary>
    public string ConfigString =>
        BackingPath + (CephConf is null ? "" : ";ceph_conf=" + CephConf) + (ClientId is null ? "" : ";ceph_id=" + ClientId);

    public override string ToString() => Scheme + Pool + "/" + Image;

    /// <summary>"rbd:POOL/IMAGE" → the image; null when the text does not start with rbd:. A bad name is a usage error.</summary>
    public static RbdImage? Parse(string text, string? cephConf = null, string? clientId = null)
    {
        if (!text.StartsWith(Scheme, StringComparison.Ordinal)) return null;
        var parts = text[Scheme.Length..].Split('/');
        if (parts.Length != 2)
            throw new UsageException($"'{text}' must be rbd:POOL/IMAGE (a pool and an image name)");
        if (clientId is not null && clientId.StartsWith("client.", StringComparison.Ordinal)) clientId = clientId["client.".Length..];
        try
        {
            // The daemon's own rule for the names, so that what tsvctl accepts the daemon serves.
            RbdLocation.Create(parts[0], parts[1], cephConf, clientId ?? RbdLocation.DefaultClientId);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"{e.Message.Split(" (Parameter")[0]}: use letters, digits, '.', '-' and '_' (not first '.')");
        }
        if (cephConf is not null)
        {
            if (!cephConf.StartsWith('/') || cephConf.Any(c => char.IsWhiteSpace(c) || c is ';' or ':' or '%'))
                throw new UsageException($"--conf '{cephConf}' must be an absolute path without whitespace, ';', ':' or '%' (it goes into the config string)");
            if (!File.Exists(cephConf)) throw new CliFailure($"--conf {cephConf} does not exist");
        }
        return new RbdImage(parts[0], parts[1], cephConf, clientId);
    }
}

/// <summary>
/// The Ceph tools tsvctl runs for RBD images: <c>rbd info/create/resize/status/rm</c> and
/// <c>rados rm</c> of the table object, with an argument list (never a shell), as for lvm2. Sizes
/// go in bytes (<c>--size 1073741824B</c>). Every failure is one line: what was run, and the
/// tool's own error line. A cluster that does not answer fails after <see cref="MountTimeoutSeconds"/>.
/// </summary>
public sealed class Rbd(ICommandRunner runner)
{
    /// <summary>How long the tools try to reach the monitors (client_mount_timeout; Ceph's default is 300 s).</summary>
    public const int MountTimeoutSeconds = 15;

    /// <summary>
    /// Features of an image made here: layering only. Several hosts write one image at once, and
    /// exclusive-lock (which object-map and fast-diff need) would move the lock between them on
    /// every write (docs/operations.md §10).
    /// </summary>
    public const string Features = "layering";

    /// <summary>The image's size in bytes, or null when the pool has no image of that name.</summary>
    public long? Size(RbdImage image)
    {
        var r = Run("rbd", image, ["info", "--format", "json", image.Pool + "/" + image.Image]);
        if (!r.Ok)
        {
            if (r.Stderr.Contains("error opening image", StringComparison.Ordinal) && r.Stderr.Contains("(2) No such file", StringComparison.Ordinal))
                return null;
            throw Failed("rbd info", r);
        }
        try
        {
            using var doc = JsonDocument.Parse(r.Stdout);
            return doc.RootElement.GetProperty("size").GetInt64();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CliFailure($"rbd info {image.Pool}/{image.Image}: cannot read its answer ({e.Message})");
        }
    }

    /// <summary>Creates the image; never touches one that exists. Returns its size.</summary>
    public long Create(RbdImage image, long sizeBytes)
    {
        if (Size(image) is not null)
            throw new CliFailure($"RBD image {image.Pool}/{image.Image} already exists; refusing to touch it (tsvctl volume resize grows it)");
        Check("rbd create", Run("rbd", image, ["create", "--size", Bytes(sizeBytes), "--image-feature", Features, image.Pool + "/" + image.Image]));
        return Size(image) ?? throw new CliFailure($"rbd create reported success but rbd info does not find {image.Pool}/{image.Image}");
    }

    /// <summary>Grows the image to <paramref name="sizeBytes"/> (already that large: nothing to do); returns its size.</summary>
    public long Grow(RbdImage image, long sizeBytes)
    {
        long current = Size(image) ?? throw new CliFailure($"RBD image {image.Pool}/{image.Image} does not exist");
        CheckGrowing(image, current, sizeBytes);
        if (sizeBytes > current)
            Check("rbd resize", Run("rbd", image, ["resize", "--no-progress", "--size", Bytes(sizeBytes), image.Pool + "/" + image.Image]));
        return Size(image) ?? throw new CliFailure($"{image.Pool}/{image.Image} disappeared while it was being resized");
    }

    public static void CheckGrowing(RbdImage image, long current, long sizeBytes)
    {
        if (sizeBytes < current)
            throw new CliFailure($"{image.Pool}/{image.Image} has {current} bytes; shrinking to {sizeBytes} is refused: the initiators' data behind the new end would be lost");
    }

    /// <summary>The addresses of the clients that have the image open (each host that serves it is one).</summary>
    public IReadOnlyList<string> Watchers(RbdImage image)
    {
        var r = Run("rbd", image, ["status", "--format", "json", image.Pool + "/" + image.Image]);
        if (!r.Ok) throw Failed("rbd status", r);
        try
        {
            using var doc = JsonDocument.Parse(r.Stdout);
            return [.. doc.RootElement.GetProperty("watchers").EnumerateArray().Select(w => w.GetProperty("address").GetString() ?? "?")];
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new CliFailure($"rbd status {image.Pool}/{image.Image}: cannot read its answer ({e.Message})");
        }
    }

    /// <summary>Removes the image, then its shared reservation table (absent if it was never served).</summary>
    public void Remove(RbdImage image)
    {
        Check("rbd rm", Run("rbd", image, ["rm", "--no-progress", image.Pool + "/" + image.Image]));
        var r = Run("rados", image, ["-p", image.Pool, "rm", image.TableObject]);
        if (!r.Ok && !r.Stderr.Contains("(2) No such file", StringComparison.Ordinal))
            throw new CliFailure($"deleted the image, but not its reservation table: {Failed("rados rm " + image.TableObject, r).Message}");
    }

    private ToolResult Run(string tool, RbdImage image, IReadOnlyList<string> arguments)
    {
        var args = new List<string>();
        if (image.CephConf is not null) args.AddRange(["-c", image.CephConf]);
        if (image.ClientId is not null) args.AddRange(["--id", image.ClientId]);
        args.AddRange(["--client_mount_timeout", MountTimeoutSeconds.ToString(CultureInfo.InvariantCulture)]);
        args.AddRange(arguments);
        return runner.Run(tool, args);
    }

    private static string Bytes(long size) => size.ToString(CultureInfo.InvariantCulture) + "B";

    private static void Check(string what, ToolResult r)
    {
        if (!r.Ok) throw Failed(what, r);
    }

    /// <summary>The tool's own error line ("rbd: …", "error …"), not librados' timestamped log lines.</summary>
    private static CliFailure Failed(string what, ToolResult r)
    {
        var lines = (r.Stderr + "\n" + r.Stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var line = lines.FirstOrDefault(l => l.StartsWith("rbd:", StringComparison.Ordinal) || l.StartsWith("error", StringComparison.Ordinal)
                                             || l.StartsWith("cannot run", StringComparison.Ordinal))
                   ?? lines.FirstOrDefault(l => l.Length == 0 || !char.IsAsciiDigit(l[0])) ?? "(no output)";
        return new CliFailure($"{what} failed (exit {r.ExitCode}): {line}");
    }
}
