using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>
    /// Notifies every watcher and waits until all acked or timeoutMs passed (-ETIMEDOUT). The reply
    /// (free it with rados_buffer_free) lists the acks and the watchers that timed out, either way.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "rados_notify2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_notify2(nint ioctx, string oid, byte* buffer, int length, ulong timeoutMs, byte** reply, nuint* replyLength);
}
