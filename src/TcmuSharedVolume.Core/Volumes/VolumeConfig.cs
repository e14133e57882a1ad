using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// The TCMU config string of one backstore of ours: <c>sharedvol/&lt;absolute path&gt;[;option=value...]</c>
/// (the kernel's <c>dev_config</c>, docs/tcmu.md §6). rtslib rejects <c>:</c> anywhere in it, so
/// the path and every value may carry <c>%XX</c> escapes (<c>%3A</c> for <c>:</c>, <c>%3B</c> for
/// <c>;</c>, <c>%25</c> for <c>%</c>).
/// <para>Options: <c>size=</c> (bytes or K/M/G/T; creates the sparse file if it is missing; an
/// existing file keeps its size), <c>serial=</c> (the volume's unit serial), <c>initiator=</c>,
/// <c>target=</c> and <c>rtpi=</c> (an explicit I_T nexus, overriding what configfs says),
/// <c>direct=1</c> (O_DIRECT, block devices only), <c>discard_zeroes=1</c> (a block device's
/// discarded ranges read zeroes: LBPRZ), <c>preallocate=1</c> (allocate the whole
/// file when size= creates it), <c>optimized_host=</c> (ALUA: only that host's target port
/// group is Active/Optimized, <see cref="PortGroupDirectory"/>).</para>
/// <para>A Ceph RBD image instead of a path: <c>sharedvol/rbd/POOL/IMAGE</c>, with <c>ceph_conf=</c>
/// and <c>ceph_id=</c> (<see cref="RbdLocation"/>).</para>
/// </summary>
public sealed partial class VolumeConfig
{
    public const string Subtype = "sharedvol";
    public const string Prefix = Subtype + "/";

    private VolumeConfig(string devConfig, string path)
    {
        DevConfig = devConfig;
        Path = path;
    }

    /// <summary>The string as the kernel holds it, e.g. <c>sharedvol//srv/vol1.img;size=10G</c>.</summary>
    public string DevConfig { get; }

    /// <summary>Absolute, unescaped, normalised (no <c>.</c>, no empty segments, no trailing slash).</summary>
    public string Path { get; }

    /// <summary>Size for creating a missing file, in bytes; a multiple of 512.</summary>
    public long? SizeBytes { get; private set; }

    /// <summary>The volume's unit serial (VPD 80h) when the administrator fixes it.</summary>
    public string? Serial { get; private set; }

    /// <summary>Explicit initiator port; overrides the binding found in configfs.</summary>
    public InitiatorPort? Initiator { get; private set; }

    /// <summary>Explicit target port name (iSCSI: <c>iqn…,t,0x0001</c>); null means "from configfs".</summary>
    public string? TargetPortName { get; private set; }

    /// <summary>Protocol implied by <see cref="TargetPortName"/>, when one is given.</summary>
    public ProtocolId? TargetProtocol { get; private set; }

    /// <summary>Explicit relative target port identifier (SPC-4: 1-65535, 0 is reserved).</summary>
    public ushort? RelativeTargetPortId { get; private set; }

    /// <summary>The Ceph RBD image when the backing path is <c>rbd/POOL/IMAGE</c>; null for a file or block device.</summary>
    public RbdLocation? Rbd { get; private init; }

    public bool Direct { get; private set; }

    /// <summary><c>discard_zeroes=1</c>: the administrator states that the block device reads
    /// zeroes where it was discarded (LBPRZ); a thin LV is recognised without it.</summary>
    public bool DiscardZeroes { get; private set; }

    public bool Preallocate { get; private set; }

    /// <summary>How long PREEMPT AND ABORT waits for the preempted nexuses' commands before it
    /// fails (<c>abort_timeout=</c> seconds); null for the default.</summary>
    public TimeSpan? AbortTimeout { get; private set; }

    /// <summary>ALUA: the host_id whose target port group alone is Active/Optimized, the others
    /// Active/Non-optimized; null: every group Active/Optimized (symmetric, the default).</summary>
    public int? OptimizedHost { get; private set; }

    /// <summary>Largest <c>abort_timeout=</c>: the answer must reach the initiator before its own
    /// command timeout (30 s in Linux sd and in LIO's TCMU cmd_time_out by default).</summary>
    public const int MaxAbortTimeoutSeconds = 25;

    /// <summary>Whether a device's dev_config belongs to this daemon (the only devices it serves or replies for).</summary>
    public static bool IsOurs(string? devConfig) => devConfig is not null && devConfig.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>
    /// Checks the backing store against the options, without changing anything. The reason is one
    /// sentence the administrator can act on.
    /// </summary>
    public (bool Ok, string? Reason) Validate() => Rbd is { } rbd ? rbd.Validate(this) : Validate("/sys/class/block");

    /// <summary><paramref name="sysClassBlock"/> is where block devices are listed (tests point it elsewhere).</summary>
    internal (bool Ok, string? Reason) Validate(string sysClassBlock)
    {
        if (Directory.Exists(Path))
            return (false, $"{Path} is a directory: give a file or a block device");

        bool underDev = Path.StartsWith("/dev/", StringComparison.Ordinal);
        if (!File.Exists(Path))
        {
            if (underDev)
                return (false, $"{Path} is not a block device (it does not exist)");
            var parent = System.IO.Path.GetDirectoryName(Path) ?? "/";
            if (!Directory.Exists(parent))
                return (false, $"parent directory {parent} of {Path} does not exist");
            if (SizeBytes is null)
                return (false, $"{Path} does not exist and no size= was given to create it");
            if (Direct)
                return (false, "direct=1 is only for block devices, and size= creates a file");
            return (true, null);
        }

        if (IsBlockDevice(sysClassBlock))
        {
            if (SizeBytes is not null)
                return (false, $"size= cannot be used with block device {Path}: its size is the device's");
            if (Preallocate)
                return (false, $"preallocate=1 is only for files, and {Path} is a block device");
            return (true, null);
        }
        if (underDev)
            return (false, $"{Path} is not a block device");
        if (Direct)
            return (false, $"direct=1 is only for block devices, and {Path} is a file");
        if (DiscardZeroes)
            return (false, $"discard_zeroes=1 is only for block devices, and {Path} is a file (a file's punched holes read zeroes anyway)");
        if (new FileInfo(Path).Length == 0)
            return (false, $"{Path} is empty: give it a size (truncate -s) or remove it and give size=");
        return (true, null);
    }

    /// <summary>Whether the path names a block device: it resolves to /dev/X and the kernel lists X in sysfs.</summary>
    public bool IsBlockDevice() => IsBlockDevice("/sys/class/block");

    internal bool IsBlockDevice(string sysClassBlock)
    {
        var real = ResolveCanonicalPath();
        if (!real.StartsWith("/dev/", StringComparison.Ordinal)) return false;
        return Directory.Exists(System.IO.Path.Combine(sysClassBlock, System.IO.Path.GetFileName(real)));
    }

    /// <summary>
    /// Creates the sparse file at <see cref="SizeBytes"/> when it is missing (allocating it all with
    /// <see cref="Preallocate"/>), through <see cref="Backends.BackingPath.CreateFile(string, long, bool)"/>:
    /// mode 0600, since it holds a disk. An existing file is left as it is.
    /// </summary>
    public (bool Ok, string? Reason) CreateIfMissing()
    {
        if (Rbd is not null || File.Exists(Path) || Directory.Exists(Path)) return (true, null);
        if (SizeBytes is not { } size)
            return (false, $"{Path} does not exist and no size= was given to create it");
        try
        {
            Backends.BackingPath.CreateFile(Path, size, Preallocate);
            return (true, null);
        }
        catch (Backends.BackingStoreException e) when (e.Errno == Libc.EEXIST)
        {
            return (true, null); // another path of the same volume created it first
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (false, $"cannot create {Path}: {e.Message}");
        }
    }

    /// <summary>
    /// The path with every symbolic link resolved by name, as earlier versions made the serial of
    /// a volume from it (<see cref="VolumeIdentity.FromBackingPath"/>); kept to recognise those
    /// volumes. Nothing is opened at this path: <see cref="Backends.BackingPath"/> resolves the
    /// path that is opened, and volumes are grouped by what it opens. Missing components are kept as written.
    /// </summary>
    public string ResolveCanonicalPath() => Rbd?.Path ?? ResolveCanonicalPath(Path);

    public static string ResolveCanonicalPath(string absolutePath)
    {
        var pending = new Stack<string>();
        // Enumerable.Reverse by name: on net9.0's libraries (the Native AOT fallback build,
        // packaging/README.md) C# 14 binds array.Reverse() to the in-place span overload.
        foreach (var part in Enumerable.Reverse(absolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries)))
            pending.Push(part);
        var resolved = new List<string>();
        int hops = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            var candidate = "/" + string.Join('/', resolved.Append(part));
            string? target = null;
            try { target = new FileInfo(candidate).LinkTarget; }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            // 40 is the kernel's MAXSYMLINKS: stop on loops the way open(2) would.
            if (target is null || ++hops > 40)
            {
                resolved.Add(part);
                continue;
            }
            if (target.StartsWith('/')) resolved.Clear();
            foreach (var t in Enumerable.Reverse(target.Split('/', StringSplitOptions.RemoveEmptyEntries)))
                pending.Push(t);
        }
        return "/" + string.Join('/', resolved);
    }
}
