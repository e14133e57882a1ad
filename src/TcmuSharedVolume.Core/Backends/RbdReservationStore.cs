using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// The reservation table of an RBD volume that several target hosts serve, in one RADOS object
/// beside the image (<c>tsv.pr.&lt;image&gt;</c> in its pool), with the protocol of
/// docs/reservations.md §18:
/// <list type="bullet">
/// <item>the object's data is the table (<see cref="ClusterTableCodec"/>), its xattr
/// <c>tsv.version</c> the version; a commit is one write op guarded by cmpxattr on the version
/// it was decided on, so two hosts can never both win (the loser gets -ECANCELED);</item>
/// <item>every host watches the object; a commit is announced with notify2, whose payload is the
/// committed table and change, and each host acks once it has applied and drained it;</item>
/// <item>a host that did not ack in time is blocklisted by the issuer (its address is kept in
/// the xattr <c>tsv.host.&lt;global id&gt;</c>, <see cref="RbdHostRecord"/>), after which the OSDs
/// refuse its writes; records of clients that no longer watch are removed when a host joins;</item>
/// <item>a host that finds itself blocklisted builds a new client, reads the table and watches
/// again before its image serves again (<see cref="RbdStore.Reconnect"/>);</item>
/// <item>ALUA: each host records its target ports of the volume in the xattr
/// <c>tsv.ports.&lt;target port group&gt;</c>, which every host's REPORT TARGET PORT GROUPS lists
/// (<see cref="IPortGroupExchange"/>).</item>
/// </list>
/// It uses the volume's own <see cref="RbdStore"/> client: blocklisting that one client fences
/// the data path and the table together.
/// </summary>
public sealed unsafe class RbdReservationStore : IClusterReservationStore, IPortGroupExchange
{
    public const string ObjectPrefix = "tsv.pr.";
    private const string VersionXattr = "tsv.version";
    private const string HostXattrPrefix = "tsv.host.";
    private const string PortsXattrPrefix = "tsv.ports.";

    /// <summary>Image metadata key and table object xattr of the volume's identity: "&lt;serial&gt; &lt;NAA, 16 hex digits&gt;".</summary>
    public const string IdentityKey = "tsv.identity";
    private const int ENOENT = 2, ENODATA = 61, EEXIST = 17, ETIMEDOUT = 110, ECANCELED = 125;

    /// <summary>A notification that only asks "who watches?": every host acks it at once.</summary>
    private static ReadOnlySpan<byte> PingPayload => "TSVPING1"u8;

    /// <summary>Asks the worker to remove the records of hosts that no longer watch (by reference).</summary>
    private static readonly Notification ExpireStale = new(0, 0, []);

    private readonly RbdStore _rbd;
    private readonly string _oid;
    // Tells this instance's own notifications from the others'; a fresh one per instance.
    private readonly ulong _origin = (ulong)Random.Shared.NextInt64() | 1;
    private readonly BlockingCollection<Notification?> _inbox = [];
    private readonly Thread _worker;
    private GCHandle _self;
    private Func<ClusterTable, bool>? _apply;
    private ulong _cookie;
    private ulong _globalId;
    private int _rejoinQueued;
    private int _rejoining;
    private int _disposed;
    private long _lostRaces;
    private long _fencedHosts;
    private long _rejoins;
    private static readonly LinuxReservationFileSystem s_files = new();
    private readonly Lock _rememberLock = new();
    private ulong _remembered;
    private bool _rememberFailed;

    /// <summary>A notification to apply; null asks the worker to rejoin.</summary>
    private sealed record Notification(ulong NotifyId, ulong Cookie, byte[] Payload);

    /// <param name="objectName">The table's object; by default <see cref="ObjectName"/> of the image.</param>
    public RbdReservationStore(RbdStore rbd, string? objectName = null)
    {
        _rbd = rbd;
        _oid = objectName ?? ObjectName(rbd.Location.Image);
        _worker = new Thread(Work) { IsBackground = true, Name = "tsv-pr-" + rbd.Location.Image };
        rbd.Blocklisted += QueueRejoin;
    }

    public static string ObjectName(string image) => ObjectPrefix + image;

    /// <summary>The table's object, "POOL/tsv.pr.IMAGE".</summary>
    public string TableObject => _rbd.Location.Pool + "/" + _oid;

    /// <summary>How long an issuer waits for the other hosts' acks before it fences the silent
    /// ones; keep it well below the initiators' command timeout (docs/reservations.md §18: 5 s of 30 s).</summary>
    public TimeSpan NotifyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a fenced host stays blocklisted; 0: the cluster's default (one hour).
    /// A fenced host rejoins with a new client at once, so this only bounds the list.</summary>
    public uint BlocklistExpireSeconds { get; init; }

    /// <summary>host_id of the daemon's configuration, recorded for the administrator (tsvctl status).</summary>
    public int HostId { get; init; }

    /// <summary>This host's name, recorded beside its address.</summary>
    public string HostName { get; init; } = Environment.MachineName;

    /// <summary>
    /// Where this host keeps the last table it loaded (in its state directory), so that after a
    /// restart it can raise the unit attentions of the changes it missed (<see cref="LastKnown"/>).
    /// Null: nothing kept.
    /// </summary>
    public string? LastKnownPath { get; init; }

    /// <summary>How long <see cref="Hosts"/> waits for the watchers' answers.</summary>
    public TimeSpan PingTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Commits lost to another host (each one decided again).</summary>
    public long LostRaces => Interlocked.Read(ref _lostRaces);

    /// <summary>Hosts this one blocklisted because they did not acknowledge a change.</summary>
    public long FencedHosts => Interlocked.Read(ref _fencedHosts);

    /// <summary>Times this host rejoined after being fenced.</summary>
    public long Rejoins => Interlocked.Read(ref _rejoins);

    /// <summary>Test hooks: a host whose notification handling hangs; a race just before the guarded write.</summary>
    internal Action? BeforeApply { get; set; }
    internal Action? BeforeCommit { get; set; }

    /// <summary>
    /// The volume's identity, the same on every host (docs/architecture.md §5): kept in the
    /// image's metadata (<see cref="IdentityKey"/>). The first host to serve the image makes it
    /// from <paramref name="candidate"/>, race-free: the exclusive create of the table object
    /// carries it, so of hosts starting at once exactly one candidate wins, and every host then
    /// writes the winner into the metadata (the same value, whoever is last).
    /// </summary>
    public static VolumeIdentity EstablishIdentity(RbdStore rbd, VolumeIdentity candidate)
    {
        if (rbd.GetMetadata(IdentityKey) is { } kept) return ParseIdentity(kept, $"image metadata {IdentityKey}");
        string oid = ObjectName(rbd.Location.Image);
        string winner = rbd.Rados((_, ioctx) =>
        {
            EnsureExists(ioctx, oid, candidate);
            var buffer = new byte[256];
            int n;
            fixed (byte* b = buffer)
                n = LibRados.rados_getxattr(ioctx, oid, IdentityKey, b, (nuint)buffer.Length);
            if (n < 0) throw new ReservationStoreException($"cannot read {IdentityKey} of {oid}: {RbdStore.Describe(-n)}");
            return Encoding.ASCII.GetString(buffer, 0, n);
        });
        var identity = ParseIdentity(winner, $"{oid} xattr {IdentityKey}");
        rbd.SetMetadata(IdentityKey, winner);
        return identity;
    }

    private static string FormatIdentity(VolumeIdentity id) => $"{id.UnitSerial} {id.NaaLocallyAssigned:x16}";

    private static VolumeIdentity ParseIdentity(string text, string where)
    {
        var parts = text.Split(' ');
        try
        {
            if (parts.Length == 2 && ulong.TryParse(parts[1], System.Globalization.NumberStyles.HexNumber, null, out ulong naa))
                return new VolumeIdentity(parts[0], naa);
        }
        catch (ArgumentException) { }
        throw new ReservationStoreException($"{where} is \"{text}\", not \"<serial> <NAA 3h designator in hex>\"");
    }

    public ClusterTable Join(Func<ClusterTable, bool> apply)
    {
        if (_apply is not null) throw new InvalidOperationException("already joined");
        _apply = apply;
        _self = GCHandle.Alloc(this);
        _worker.Start();
        var table = _rbd.Rados(Attach);
        Remember(table);
        _inbox.Add(ExpireStale);
        return table;
    }

    /// <summary>Watch first, then read: a change committed in between is then both read and notified (and applied once, by version).</summary>
    private ClusterTable Attach(nint cluster, nint ioctx)
    {
        EnsureExists(ioctx, _oid, VolumeIdentity.NewRandom(Guid.NewGuid()));
        ulong cookie;
        Check(LibRados.rados_watch2(ioctx, _oid, &cookie, &OnNotify, &OnWatchError, GCHandle.ToIntPtr(_self)), "watch");
        _cookie = cookie;
        _globalId = LibRados.rados_get_instance_id(cluster);
        // Where the issuer of a change finds this client's address to blocklist it. Written after
        // the watch: a record that another host reads belongs to a client that watched already.
        byte* addrs;
        Check(LibRados.rados_getaddrs(cluster, &addrs), "getaddrs");
        string address;
        try { address = Marshal.PtrToStringUTF8((nint)addrs) ?? ""; }
        finally { NativeMemory.Free(addrs); }
        var record = Encoding.UTF8.GetBytes(new RbdHostRecord(_globalId, address, HostId, HostName, DateTimeOffset.UtcNow).Format());
        fixed (byte* r = record)
            Check(LibRados.rados_setxattr(ioctx, _oid, HostXattrPrefix + _globalId, r, (nuint)record.Length), "record this host's address");
        return Read(ioctx);
    }

    /// <summary>
    /// The empty table at version 0, made by whichever host comes first (exclusive create), with
    /// the volume's identity (<paramref name="identity"/> if this host is first).
    /// </summary>
    private static void EnsureExists(nint ioctx, string oid, VolumeIdentity identity)
    {
        var data = ClusterTableCodec.Encode(ClusterTable.Initial, 0);
        var version = VersionText(0);
        var id = Encoding.ASCII.GetBytes(FormatIdentity(identity));
        nint op = LibRados.rados_create_write_op();
        try
        {
            LibRados.rados_write_op_create(op, LibRados.LIBRADOS_CREATE_EXCLUSIVE, null);
            int r;
            fixed (byte* v = version)
            fixed (byte* i = id)
            fixed (byte* d = data)
            {
                LibRados.rados_write_op_setxattr(op, VersionXattr, v, (nuint)version.Length);
                LibRados.rados_write_op_setxattr(op, IdentityKey, i, (nuint)id.Length);
                LibRados.rados_write_op_write_full(op, d, (nuint)data.Length);
                r = LibRados.rados_write_op_operate(op, ioctx, oid, null, 0);
            }
            if (r != -EEXIST && r < 0)
                throw new ReservationStoreException($"cannot create the shared reservation table {oid}: {RbdStore.Describe(-r)}");
        }
        finally { LibRados.rados_release_write_op(op); }
    }

    /// <summary>The whole object in one read (one write op replaced it whole: never a mix of two versions).</summary>
    private ClusterTable Read(nint ioctx)
    {
        for (int size = 16 << 10; ; size *= 4)
        {
            var buffer = new byte[size];
            int n;
            fixed (byte* b = buffer)
                n = LibRados.rados_read(ioctx, _oid, b, (nuint)size, 0);
            if (n == -ENOENT)
            {
                EnsureExists(ioctx, _oid, VolumeIdentity.NewRandom(Guid.NewGuid()));
                continue;
            }
            Check(n, "read");
            if (n < size) return ClusterTableCodec.Decode(buffer.AsSpan(0, n)).Table;
        }
    }

    public bool TryCommit(ClusterTable next, out ClusterTable current)
    {
        BeforeCommit?.Invoke();
        var data = ClusterTableCodec.Encode(next, _origin);
        var expected = VersionText(next.Version - 1);
        var version = VersionText(next.Version);
        ClusterTable? newer = null;
        Call((_, ioctx) =>
        {
            nint op = LibRados.rados_create_write_op();
            try
            {
                int r;
                fixed (byte* e = expected)
                fixed (byte* v = version)
                fixed (byte* d = data)
                {
                    LibRados.rados_write_op_cmpxattr(op, VersionXattr, LibRados.LIBRADOS_CMPXATTR_OP_EQ, e, (nuint)expected.Length);
                    LibRados.rados_write_op_setxattr(op, VersionXattr, v, (nuint)version.Length);
                    LibRados.rados_write_op_write_full(op, d, (nuint)data.Length);
                    r = LibRados.rados_write_op_operate(op, ioctx, _oid, null, 0);
                }
                if (r == -ECANCELED)
                {
                    newer = Read(ioctx);
                    return true;
                }
                Check(r, "commit");
                return true;
            }
            finally { LibRados.rados_release_write_op(op); }
        });
        if (newer is not null)
        {
            Interlocked.Increment(ref _lostRaces);
            Log.Info($"reservations: {_oid}: another host committed version {newer.Version} first; deciding again");
            current = newer;
            return false;
        }
        Remember(next);
        current = next;
        return true;
    }

    public bool Announce(ClusterTable committed)
    {
        var payload = ClusterTableCodec.Encode(committed, _origin);
        return Call((cluster, ioctx) =>
        {
            byte* reply = null;
            nuint replyLength = 0;
            int r;
            fixed (byte* p = payload)
                r = LibRados.rados_notify2(ioctx, _oid, p, payload.Length, (ulong)NotifyTimeout.TotalMilliseconds, &reply, &replyLength);
            List<(ulong Id, ulong Cookie)> silent;
            try
            {
                silent = reply is null ? [] : NotifyReply(new ReadOnlySpan<byte>(reply, (int)replyLength)).Missed;
            }
            finally
            {
                if (reply is not null) LibRados.rados_buffer_free(reply);
            }
            if (r == 0) return true;
            if (r != -ETIMEDOUT) Check(r, "notify");
            foreach (var (id, cookie) in silent)
            {
                if (id == _globalId && cookie == _cookie) continue; // our own watch: this host already applied it
                if (!Fence(cluster, ioctx, id, committed.Version)) return false;
            }
            // The blocklist must be in force before GOOD: the OSD map that carries it.
            Check(LibRados.rados_wait_for_latest_osdmap(cluster), "wait for the OSD map");
            return true;
        });
    }

    /// <summary>notify2's reply: acks (id, cookie, payload) then the watchers that timed out (id, cookie).</summary>
    private static (List<(ulong Id, ulong Cookie)> Acked, List<(ulong Id, ulong Cookie)> Missed) NotifyReply(ReadOnlySpan<byte> reply)
    {
        uint acks = BinaryPrimitives.ReadUInt32LittleEndian(reply);
        int at = 4;
        var acked = new List<(ulong, ulong)>((int)Math.Min(acks, 1024));
        for (uint i = 0; i < acks; i++)
        {
            acked.Add((BinaryPrimitives.ReadUInt64LittleEndian(reply[at..]), BinaryPrimitives.ReadUInt64LittleEndian(reply[(at + 8)..])));
            at += 16 + 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(reply[(at + 16)..]);
        }
        uint missed = BinaryPrimitives.ReadUInt32LittleEndian(reply[at..]);
        at += 4;
        var list = new List<(ulong, ulong)>((int)Math.Min(missed, 1024));
        for (uint i = 0; i < missed; i++, at += 16)
            list.Add((BinaryPrimitives.ReadUInt64LittleEndian(reply[at..]), BinaryPrimitives.ReadUInt64LittleEndian(reply[(at + 8)..])));
        return (acked, list);
    }

    /// <summary>docs/reservations.md §18 step 4: blocklists the client that did not acknowledge.</summary>
    private bool Fence(nint cluster, nint ioctx, ulong globalId, ulong version)
    {
        var address = new byte[512];
        int n;
        fixed (byte* a = address)
            n = LibRados.rados_getxattr(ioctx, _oid, HostXattrPrefix + globalId, a, (nuint)address.Length);
        if (n < 0)
        {
            Log.Error($"reservations: {_oid}: client {globalId} did not acknowledge version {version} and its address is unknown ({RbdStore.Describe(-n)}); cannot fence it");
            return false;
        }
        string text = RbdHostRecord.Parse(globalId, Encoding.UTF8.GetString(address, 0, n)).Address;
        int r = LibRados.rados_blocklist_add(cluster, BlocklistAddress(text), BlocklistExpireSeconds);
        if (r < 0)
        {
            Log.Error($"reservations: {_oid}: blocklisting client {globalId} ({text}) failed: {RbdStore.Describe(-r)}");
            return false;
        }
        Interlocked.Increment(ref _fencedHosts);
        Log.Warning($"reservations: {_oid}: client {globalId} ({text}) did not acknowledge version {version} within {NotifyTimeout.TotalSeconds:0.#} s; blocklisted it");
        return true;
    }

    /// <summary>rados_getaddrs gives "[v2:ip:port/nonce,v1:...]" or "ip:port/nonce"; blocklist add takes one address.</summary>
    internal static string BlocklistAddress(string addrs)
    {
        var first = addrs.Trim().TrimStart('[').TrimEnd(']').Split(',')[0];
        int colon = first.IndexOf(':');
        return first.StartsWith("v1:") || first.StartsWith("v2:") || first.StartsWith("any:") ? first[(colon + 1)..] : first;
    }

    // ------------------------------------------------------------------ the hosts

    /// <summary>
    /// The hosts recorded in the table's object and whether each still serves: the records are
    /// read first, then every watcher is pinged (a notification each acks at once). A record is
    /// written only once its client watches, so a host whose record was read is among the
    /// watchers the ping reaches, unless its client is gone for good: neither acked nor timed
    /// out is <see cref="RbdHostState.Gone"/>. Watchers without a record are listed too.
    /// </summary>
    /// <exception cref="ClusterTableUnavailableException">This host is fenced or rejoining.</exception>
    public IReadOnlyList<RbdHost> Hosts() => Call((_, ioctx) =>
    {
        var records = ReadHostRecords(ioctx);
        var (answered, silent) = Ping(ioctx);
        var hosts = new List<RbdHost>();
        foreach (var r in records)
        {
            var state = answered.Contains(r.ClientId) ? RbdHostState.Serving
                : silent.Contains(r.ClientId) ? RbdHostState.NotAnswering : RbdHostState.Gone;
            hosts.Add(new RbdHost(r, state, r.ClientId == _globalId));
        }
        foreach (var id in answered.Concat(silent).Distinct().Where(id => records.All(r => r.ClientId != id)).Order())
            hosts.Add(new RbdHost(new RbdHostRecord(id, "", null, null, null),
                answered.Contains(id) ? RbdHostState.Serving : RbdHostState.NotAnswering, id == _globalId));
        return (IReadOnlyList<RbdHost>)hosts;
    });

    /// <summary>Every <c>tsv.host.*</c> xattr of the table's object.</summary>
    private List<RbdHostRecord> ReadHostRecords(nint ioctx)
    {
        var records = new List<RbdHostRecord>();
        foreach (var (key, value) in ReadXattrs(ioctx, HostXattrPrefix, "list the hosts of"))
            if (ulong.TryParse(key.AsSpan(HostXattrPrefix.Length), System.Globalization.NumberStyles.None, null, out ulong id))
                records.Add(RbdHostRecord.Parse(id, Encoding.UTF8.GetString(value)));
        records.Sort((a, b) => a.ClientId.CompareTo(b.ClientId));
        return records;
    }

    /// <summary>The xattrs of the table's object whose names start with <paramref name="prefix"/>.</summary>
    private List<(string Key, byte[] Value)> ReadXattrs(nint ioctx, string prefix, string what)
    {
        var found = new List<(string, byte[])>();
        nint iterator;
        Check(LibRados.rados_getxattrs(ioctx, _oid, &iterator), what);
        try
        {
            while (true)
            {
                byte* name, value;
                nuint length;
                Check(LibRados.rados_getxattrs_next(iterator, &name, &value, &length), what);
                if (name is null) return found;
                var key = Marshal.PtrToStringUTF8((nint)name) ?? "";
                if (!key.StartsWith(prefix, StringComparison.Ordinal)) continue;
                // An empty value may come with a null pointer.
                found.Add((key, length == 0 ? [] : new ReadOnlySpan<byte>(value, (int)length).ToArray()));
            }
        }
        finally { LibRados.rados_getxattrs_end(iterator); }
    }


    /// <summary>The client ids of the watchers that acked a ping, and of those that did not in time.</summary>
    private (HashSet<ulong> Answered, HashSet<ulong> Silent) Ping(nint ioctx)
    {
        byte* reply = null;
        nuint replyLength = 0;
        int r;
        fixed (byte* p = PingPayload)
            r = LibRados.rados_notify2(ioctx, _oid, p, PingPayload.Length, (ulong)PingTimeout.TotalMilliseconds, &reply, &replyLength);
        try
        {
            if (r < 0 && r != -ETIMEDOUT) Check(r, "ping the hosts of");
            if (reply is null) return ([], []);
            var (acked, missed) = NotifyReply(new ReadOnlySpan<byte>(reply, (int)replyLength));
            return ([.. acked.Select(a => a.Id)], [.. missed.Select(m => m.Id)]);
        }
        finally
        {
            if (reply is not null) LibRados.rados_buffer_free(reply);
        }
    }

    /// <summary>
    /// Removes the records of clients that no longer watch the table (docs/operations.md §10):
    /// each restart or rejoin of a host leaves its old client's record behind. Never a watcher's,
    /// even a silent one: that is the record a fence needs.
    /// </summary>
    private void ExpireStaleHosts()
    {
        try
        {
            foreach (var host in Hosts())
            {
                if (host.State != RbdHostState.Gone || host.IsThisHost) continue;
                int r = _rbd.Rados((_, ioctx) => LibRados.rados_rmxattr(ioctx, _oid, HostXattrPrefix + host.Record.ClientId));
                if (r < 0 && r != -ENODATA)
                    Log.Warning($"reservations: {_oid}: removing the stale record of {host.Record} failed: {RbdStore.Describe(-r)}");
                else if (r == 0)
                    Log.Info($"reservations: {_oid}: removed the record of {host.Record}, which no longer watches the table");
            }
        }
        catch (Exception e) when (e is ReservationStoreException or ClusterTableUnavailableException or BackingStoreException)
        {
            Log.Warning($"reservations: {_oid}: stale host records not checked: {e.Message}");
        }
    }

    // ------------------------------------------------------------------ the table this host last knew

    public ClusterTable? LastKnown()
    {
        if (LastKnownPath is null) return null;
        byte[]? data;
        try { data = s_files.ReadAll(LastKnownPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warning($"reservations: {_oid}: cannot read {LastKnownPath} ({e.Message}); unit attentions of changes made while this host was away are not raised");
            return null;
        }
        if (data is null) return null;
        try { return ClusterTableCodec.Decode(data).Table; }
        catch (ReservationStoreException e)
        {
            Log.Warning($"reservations: {_oid}: ignoring {LastKnownPath}: {e.Message}");
            return null;
        }
    }

    /// <summary>
    /// Keeps <paramref name="table"/> as the last one this host loaded, unless it knows a newer
    /// one. Written whole and renamed into place, not synced: what a crash loses is only the
    /// precision of the unit attentions raised after the restart (which also raises POWER ON).
    /// </summary>
    private void Remember(ClusterTable table)
    {
        if (LastKnownPath is null) return;
        lock (_rememberLock)
        {
            if (table.Version <= _remembered) return;
            string temp = LastKnownPath + ".tmp";
            try
            {
                // Mode 0600, no link followed: it names initiators and their keys, as a .pr file does.
                s_files.CreateDirectory(Path.GetDirectoryName(LastKnownPath)!);
                using (var f = s_files.Create(temp)) f.Write(ClusterTableCodec.Encode(table, 0));
                s_files.Rename(temp, LastKnownPath);
                _remembered = table.Version;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (!_rememberFailed)
                    Log.Warning($"reservations: {_oid}: cannot keep the last table in {LastKnownPath} ({e.Message}); after a restart, " +
                        "unit attentions of changes made while this host was away are not raised");
                _rememberFailed = true;
            }
        }
    }

    // ------------------------------------------------------------------ ALUA: each host's ports

    /// <summary>The value is the relative target port identifiers in decimal, comma-separated
    /// (readable with <c>rados getxattr</c>); empty once the host withdrew.</summary>
    public void PublishPorts(ushort group, IReadOnlyList<ushort> ports)
    {
        var value = Encoding.ASCII.GetBytes(string.Join(',', ports));
        Call((_, ioctx) =>
        {
            fixed (byte* v = value)
                Check(LibRados.rados_setxattr(ioctx, _oid, PortsXattrPrefix + group, v, (nuint)value.Length), "record this host's target ports in");
            return true;
        });
    }

    public IReadOnlyList<PortGroupRecord> ReadPortGroups() => Call((_, ioctx) =>
    {
        var records = new List<PortGroupRecord>();
        foreach (var (key, value) in ReadXattrs(ioctx, PortsXattrPrefix, "read the hosts' target ports from"))
        {
            if (value.Length == 0) continue; // withdrawn
            string text = Encoding.ASCII.GetString(value);
            if (ParsePorts(key[PortsXattrPrefix.Length..], text) is { } record) records.Add(record);
            else Log.Warning($"reservations: {_oid}: ignoring xattr {key} = \"{text}\", not a target port group and its ports");
        }
        return (IReadOnlyList<PortGroupRecord>)records;
    });

    /// <summary>A group and its ports, or null if either is not one.</summary>
    internal static PortGroupRecord? ParsePorts(string group, string ports)
    {
        if (!ushort.TryParse(group, System.Globalization.NumberStyles.None, null, out ushort id) || id is 0 or > PortGroupDirectory.MaxGroup)
            return null;
        if (ports.Length == 0) return null;
        var list = new List<ushort>();
        foreach (var part in ports.Split(','))
        {
            if (!ushort.TryParse(part, System.Globalization.NumberStyles.None, null, out ushort rtpi) || rtpi == 0) return null;
            list.Add(rtpi);
        }
        list.Sort();
        return new PortGroupRecord(id, [.. list.Distinct()]);
    }

    // ------------------------------------------------------------------ notifications

    [UnmanagedCallersOnly]
    private static void OnNotify(nint arg, ulong notifyId, ulong cookie, ulong notifierId, void* data, nuint length)
    {
        try
        {
            var self = (RbdReservationStore)GCHandle.FromIntPtr(arg).Target!;
            if (new ReadOnlySpan<byte>(data, (int)length).SequenceEqual(PingPayload))
            {
                self.Ack(notifyId, cookie);
                return;
            }
            var payload = new ReadOnlySpan<byte>(data, (int)length).ToArray();
            ulong origin;
            try { origin = ClusterTableCodec.Decode(payload).Origin; }
            catch (ReservationStoreException e)
            {
                Log.Warning($"reservations: {self._oid}: ignoring a notification that is not a table from client {notifierId}: {e.Message}");
                origin = self._origin;
            }
            // Our own change is in force here already: ack at once, never behind a drain.
            if (origin == self._origin) self.Ack(notifyId, cookie);
            else if (!self._inbox.TryAdd(new Notification(notifyId, cookie, payload)))
                Log.Warning($"reservations: {self._oid}: notification after close dropped");
        }
        catch (Exception e)
        {
            Log.Error($"reservations: watch callback failed: {e.Message}");
        }
    }

    [UnmanagedCallersOnly]
    private static void OnWatchError(nint arg, ulong cookie, int error)
    {
        try
        {
            var self = (RbdReservationStore)GCHandle.FromIntPtr(arg).Target!;
            Log.Warning($"reservations: {self._oid}: watch lost ({RbdStore.Describe(-error)}); rejoining");
            self.QueueRejoin();
        }
        catch (Exception e)
        {
            Log.Error($"reservations: watch error callback failed: {e.Message}");
        }
    }

    private void Ack(ulong notifyId, ulong cookie)
    {
        try
        {
            Call((_, ioctx) =>
            {
                Check(LibRados.rados_notify_ack(ioctx, _oid, notifyId, cookie, null, 0), "acknowledge");
                return true;
            });
        }
        catch (Exception e)
        {
            Log.Warning($"reservations: {_oid}: acknowledging notification {notifyId} failed: {e.Message}");
        }
    }

    /// <summary>
    /// Asks the worker to rejoin, once. Reports that arrive while it rejoins are ignored: they
    /// come from the old client (a request that failed, its watch's error), and the new client
    /// serves only once the rejoin is complete.
    /// </summary>
    private void QueueRejoin()
    {
        if (Volatile.Read(ref _disposed) != 0 || Volatile.Read(ref _rejoining) != 0
            || Interlocked.Exchange(ref _rejoinQueued, 1) != 0) return;
        try { _inbox.TryAdd(null); }
        catch (InvalidOperationException) { } // closing
    }

    /// <summary>The store's thread: applies other hosts' changes in order and acks them; rejoins when fenced.</summary>
    private void Work()
    {
        foreach (var n in _inbox.GetConsumingEnumerable())
        {
            try
            {
                if (n is null)
                {
                    Rejoin();
                    continue;
                }
                if (ReferenceEquals(n, ExpireStale))
                {
                    ExpireStaleHosts();
                    continue;
                }
                BeforeApply?.Invoke();
                var table = ClusterTableCodec.Decode(n.Payload).Table;
                if (_apply!(table))
                {
                    Ack(n.NotifyId, n.Cookie);
                    Remember(table);
                }
            }
            catch (Exception e)
            {
                Log.Error($"reservations: {_oid}: applying a change from another host failed, not acknowledged: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Fenced, or the watch was lost (then notifications may have been missed, and the issuer
    /// fenced this host anyway): new client, table read, watch, and only then the image serves.
    /// </summary>
    private void Rejoin()
    {
        Volatile.Write(ref _rejoining, 1);
        Volatile.Write(ref _rejoinQueued, 0);
        bool rejoined;
        try { rejoined = RejoinNow(); }
        finally { Volatile.Write(ref _rejoining, 0); }
        if (rejoined) ExpireStaleHosts();
    }

    private bool RejoinNow()
    {
        Log.Warning($"reservations: {_oid}: this host was fenced or lost its watch; reconnecting before it serves again");
        while (Volatile.Read(ref _disposed) == 0)
        {
            try
            {
                _rbd.Reconnect((cluster, ioctx) =>
                {
                    var table = Attach(cluster, ioctx);
                    // Its unit attentions are owed (or those of every change missed, when more
                    // than one); no drain: this host's old client, fenced, wrote nothing since.
                    _apply!(table with { Change = table.Change with { Preempted = [] } });
                    Remember(table);
                    return true;
                });
                Interlocked.Increment(ref _rejoins);
                Log.Notice($"reservations: {_oid}: rejoined as client {_globalId}");
                return true;
            }
            catch (ObjectDisposedException) { return false; }
            catch (Exception e)
            {
                Log.Error($"reservations: {_oid}: rejoining failed, retrying in 1 s: {e.Message}");
                Thread.Sleep(1000);
            }
        }
        return false;
    }

    /// <summary>A RADOS call on the volume's client; fenced or rejoining is <see cref="ClusterTableUnavailableException"/>.</summary>
    private T Call<T>(RbdStore.RadosCall<T> call)
    {
        try { return _rbd.Rados(call); }
        catch (BackingStoreException e) when (e.Errno == RbdStore.ESHUTDOWN)
        {
            _rbd.ReportBlocklisted();
            throw new ClusterTableUnavailableException(e.Message, e);
        }
    }

    private void Check(int r, string what)
    {
        if (r >= 0) return;
        if (-r == RbdStore.ESHUTDOWN) throw new BackingStoreException($"{what} {_oid}: {RbdStore.Describe(-r)}", -r);
        throw new ReservationStoreException($"cannot {what} the shared reservation table {_oid}: {RbdStore.Describe(-r)}");
    }

    private static byte[] VersionText(ulong version) => Encoding.ASCII.GetBytes(version.ToString("x16"));

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _rbd.Blocklisted -= QueueRejoin;
        if (_apply is null) return;
        try
        {
            _rbd.Rados((cluster, ioctx) =>
            {
                LibRados.rados_unwatch2(ioctx, _cookie);
                LibRados.rados_watch_flush(cluster);
                // This client's record is stale from now on; the next host to join would remove it too.
                LibRados.rados_rmxattr(ioctx, _oid, HostXattrPrefix + _globalId);
                return true;
            });
        }
        catch (Exception e) when (e is BackingStoreException or ObjectDisposedException)
        {
            // Not unwatched (fenced): librados may still call back until the client is shut
            // down, so the handle that the callbacks resolve stays allocated.
            _inbox.CompleteAdding();
            return;
        }
        _inbox.CompleteAdding();
        if (Thread.CurrentThread != _worker) _worker.Join();
        _self.Free();
    }
}
