using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Fences a client: the OSDs refuse every operation from that address (ip:port/nonce) for expireSeconds (0: the cluster default).</summary>
    [LibraryImport(Library, EntryPoint = "rados_blocklist_add", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_blocklist_add(nint cluster, string clientAddress, uint expireSeconds);
}
